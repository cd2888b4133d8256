"""Liveness, readiness and metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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


async def metrics(request: web.Request) -> web.Response:
    deps, engine = request.app[DEPS], request.app[ENGINE]
    m = deps.metrics
    m.queue_depth.set(engine.queue.qsize())
    m.audit_deferred.set(len(engine.executor.unrecorded))
    m.store_size_budget.set(deps.settings.retention.size_budget_bytes)
    try:
        for severity, count in (await deps.store.open_incident_counts()).items():
            m.open_incidents.labels(severity.value).set(count)
        m.backlog.set(await deps.store.count_unprocessed())
        m.approvals_pending.set(len(await deps.store.list_approvals(ApprovalStatus.PENDING, limit=100_000)))
        await _store_gauges(request)
    except StoreUnavailable:
        pass  # the last known values stay; /readyz says what is wrong
    return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})



async def _store_gauges(request: web.Request) -> None:
    """Size, rows per table, the oldest row of each kind, the oldest unfinished request."""
    deps = request.app[DEPS]
    m, stats, now = deps.metrics, await deps.store.store_stats(), deps.clock.now()
    m.store_size.set(stats.size_bytes)
    for table, count in stats.rows.items():
        m.store_rows.labels(table).set(count)
    for kind, at in stats.oldest.items():
        m.store_oldest.labels(kind.value).set((now - at).total_seconds() if at else 0)
    since = stats.oldest_unfinished
    m.unfinished_age.set((now - since).total_seconds() if since else 0)
