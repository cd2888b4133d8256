"""The core's private endpoints for its intake processes (served on its unix socket only; an
intake process never forwards a request under /internal/)."""

from __future__ import annotations

import orjson
from aiohttp import web

from remediator.errors import StoreUnavailable
from remediator.model import alert_from_wire
from remediator.web.common import json_response
from remediator.web.keys import DEPS, ENGINE

# What a hand-off call adds to its alerts: `{"alerts":[...]}`, and the per-alert fields that do not
# come from the body (dedup key prefix and stamp, times, id, field names) in the largest alert.
HANDOFF_OVERHEAD = 64 * 1024


def handoff_limit(max_body_bytes: int) -> int:
    """The largest `/internal/record` call, derived from the public body limit so the two cannot disagree.

    Intake processes pack the alerts of concurrent requests into calls of at most this size, and
    split a request's alerts over several calls when they need more. One alert alone always fits:
    its wire form repeats no part of the body more than twice (the fingerprint is also in the dedup
    key, the alert name also in the labels, the summary also in the annotations), and what it adds
    of its own is bounded.
    """
    return 2 * max_body_bytes + HANDOFF_OVERHEAD


async def receive_counters(request: web.Request) -> web.Response:
    """Counter increments relayed by intake processes (served on the core's private socket only)."""
    metrics = request.app[DEPS].metrics
    payload = await request.json()
    for name, labels, delta in payload.get("counters", []):
        counter = metrics.counter(name)
        if counter is not None and delta > 0:
            (counter.labels(**labels) if labels else counter).inc(delta)
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
