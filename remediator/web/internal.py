"""The core's private endpoints for its intake processes (served on its unix socket only; an
intake process never forwards a request under /internal/)."""

from __future__ import annotations

import orjson
from aiohttp import web

from remediator.errors import StoreUnavailable
from remediator.model import alert_from_wire
from remediator.web.common import json_response
from remediator.web.keys import DEPS, ENGINE


async def receive_counters(request: web.Request) -> web.Response:
    """Counter increments relayed by intake processes (served on the core's private socket only)."""
    metrics = request.app[DEPS].metrics
    payload = await request.json()
    for name, labels, delta in payload.get("counters", []):
        counter = metrics.counter(name)
        if counter is not None and delta > 0:
            counter.labels(**labels).inc(delta)
    return json_response({"ok": True})


async def receive_alerts(request: web.Request) -> web.Response:
    """Alerts an intake process parsed, recorded here (one writer) and queued (private socket only)."""
    engine = request.app[ENGINE]
    payload = orjson.loads(await request.read())
    try:
        fresh = await engine.record([alert_from_wire(a) for a in payload["alerts"]])
    except StoreUnavailable as exc:
        return json_response({"error": "store_unavailable", "detail": str(exc)}, 503)
    return web.Response(body=orjson.dumps({"fresh": fresh}), content_type="application/json")
