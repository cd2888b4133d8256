"""Liveness, readiness and metrics."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client.aiohttp import make_aiohttp_handler

from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.errors import CoordinationUnavailable, StoreUnavailable
from remediator.model import ApprovalStatus
from remediator.web.common import json_response
from remediator.web.keys import DEPS, ENGINE


async def healthz(request: web.Request) -> web.Response:
    """The process answers: nothing else is checked (ECS restarts the task when this fails)."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready to take alerts: the store is writable, policies are loaded, the engine is running."""
    deps, engine = request.app[DEPS], request.app[ENGINE]
    checks: dict[str, str] = {"policies": f"{len(deps.policies)} loaded", "engine": "running"}
    ready = True
    try:
        await deps.store.ping()
        checks["store"] = "writable"
    except StoreUnavailable as exc:
        checks["store"] = f"unavailable: {exc}"
        ready = False
    if not engine.accepting:
        checks["engine"] = "stopping"
        ready = False
    try:
        await deps.coordination.ping()
        checks["coordination"] = "ok"
    except CoordinationUnavailable as exc:
        # Not a readiness failure: intake goes on; actions needing shared limits are denied.
        checks["coordination"] = f"degraded: {exc}"
    return json_response({"ready": ready, "checks": checks}, 200 if ready else 503)


def metrics_handler(deps: Deps, engine: Engine) -> Handler:
    """`/metrics`: prometheus_client's own aiohttp handler (text or OpenMetrics by the Accept
    header, gzip when the scraper accepts it, `name[]` filters), after the store-derived gauges are
    read for this scrape."""
    exposition = make_aiohttp_handler(deps.metrics.registry)

    async def metrics(request: web.Request) -> web.StreamResponse:
        deps.metrics.queue_depth.set(engine.queue.qsize())
        try:
            counts = await deps.store.open_incident_counts()
            deps.metrics.store_gauges.update(
                {severity.value: count for severity, count in counts.items()}, await deps.store.count_unprocessed(),
                len(await deps.store.list_approvals(ApprovalStatus.PENDING, limit=100_000)))
        except StoreUnavailable:
            pass  # the last values read stay; /readyz says what is wrong
        return await exposition(request)

    return metrics
