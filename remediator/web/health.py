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
        m = deps.metrics
        m.queue_depth.set(engine.queue.qsize())
        m.audit_deferred.set(len(engine.executor.unrecorded))
        m.store_size_budget.set(deps.settings.retention.size_budget_bytes)
        try:
            counts = await deps.store.open_incident_counts()
            m.store_gauges.update(
                {severity.value: count for severity, count in counts.items()}, await deps.store.count_unprocessed(),
                len(await deps.store.list_approvals(ApprovalStatus.PENDING, limit=100_000)))
            await _store_gauges(deps)
        except StoreUnavailable:
            pass  # the last values read stay; /readyz says what is wrong
        return await exposition(request)

    return metrics


async def _store_gauges(deps: Deps) -> None:
    """Size, rows per table, the oldest row of each kind, the oldest unfinished request."""
    m, stats, now = deps.metrics, await deps.store.store_stats(), deps.clock.now()
    m.store_size.set(stats.size_bytes)
    for table, count in stats.rows.items():
        m.store_rows.labels(table).set(count)
    for kind, at in stats.oldest.items():
        m.store_oldest.labels(kind.value).set((now - at).total_seconds() if at else 0)
    since = stats.oldest_unfinished
    m.unfinished_age.set((now - since).total_seconds() if since else 0)
