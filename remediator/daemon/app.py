"""`build_app(settings)`: the aiohttp application; its cleanup context owns every resource."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from remediator.actions.aws.waf_ledger import LEDGER_EXTRA
from remediator.actions.base import ActionDeps, ActionRegistry
from remediator.actions.registry import default_registry
from remediator.actions.targets import TARGETS_EXTRA, TargetConnections
from remediator.aws.clients import AWS_EXTRA, AwsClients
from remediator.clock import Clock, SystemClock
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.engine.waf_blocks import StoreBlockLedger
from remediator.guardrails import default_guardrails
from remediator.observability import Metrics
from remediator.policy.loader import load_policies
from remediator.policy.match import PolicyIndex
from remediator.settings import Settings
from remediator.stores.base import Coordination, Store
from remediator.stores.memory import InProcessCoordination
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.redis import RedisCoordination
from remediator.stores.sqlite.store import SqliteStore
from remediator.web import api, approvals_api, console, health, incidents_api, internal
from remediator.web.common import CLIENT_HEADER
from remediator.web.keys import DEPS, ENGINE, INTAKE, SESSIONS
from remediator.web.routes import add_webhook_routes
from remediator.web.sessions import SessionKeeper


def holder_id() -> str:
    """This process's name in claims and leases: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def make_store(settings: Settings, holder: str, *, owner: bool = True) -> Store:
    """The configured store. `owner`: this is the daemon's core (an intake process or the CLI is not)."""
    if settings.store.is_sqlite:
        return SqliteStore(settings.store.sqlite_path, holder=holder, synchronous=settings.store.sqlite_synchronous,
                           batch_max=settings.store.batch_max,
                           busy_timeout_ms=int(settings.store.sqlite_busy_timeout.total_seconds() * 1000),
                           release_claims=owner)
    return PostgresStore(settings.store, holder=holder)


def make_coordination(settings: Settings) -> Coordination:
    if settings.coordination.url.startswith("memory://"):
        return InProcessCoordination()
    return RedisCoordination(settings.coordination)


def build_deps(
    settings: Settings, *, clock: Clock | None = None, registry: ActionRegistry | None = None,
    store: Store | None = None, coordination: Coordination | None = None, owner: bool = True,
) -> Deps:
    """Everything the engine needs, constructed but not opened (the cleanup context opens it)."""
    clock = clock or SystemClock()
    registry = registry or default_registry()
    policies = PolicyIndex(load_policies(settings.policies_dir, registry))
    coordination = coordination or make_coordination(settings)
    store = store or make_store(settings, holder_id(), owner=owner)
    # waf.block_ip's ledger lives in the store, which also schedules each block's expiry timer.
    actions = ActionDeps(settings, clock, extras={LEDGER_EXTRA: StoreBlockLedger(store)})
    return Deps(
        settings=settings, clock=clock, store=store, coordination=coordination, registry=registry,
        policies=policies, guardrails=default_guardrails(settings.guardrails, coordination),
        metrics=Metrics(registry.names()), actions=actions,
    )


async def _resources(app: web.Application) -> AsyncIterator[None]:
    deps, engine = app[DEPS], app[ENGINE]
    settings = deps.settings
    await deps.store.open()
    await deps.coordination.open()
    deps.actions.http = aiohttp.ClientSession()
    # The AWS actions' clients (one session, cached clients); a test may have put its own there.
    aws = deps.actions.extras.setdefault(AWS_EXTRA, AwsClients(settings.aws))
    await aws.open()
    targets = deps.actions.extras[TARGETS_EXTRA] = TargetConnections(deps.settings.targets)
    await engine.start()
    try:
        yield
    finally:
        await engine.stop()
        await aws.close()
        await targets.close()
        await deps.actions.http.close()
        await deps.coordination.close()
        await deps.store.close()


@web.middleware
async def _client_from_intake(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Behind intake processes every request comes from one of them: the client is who they saw."""
    request["client"] = request.headers.get(CLIENT_HEADER, "")
    return await handler(request)


def build_app(settings: Settings, deps: Deps | None = None, *, behind_intake: bool = False) -> web.Application:
    """The core app. `behind_intake`: it listens only on a private socket, behind intake processes."""
    deps = deps or build_deps(settings)
    app = web.Application(client_max_size=settings.max_body_bytes + 1,
                          middlewares=[_client_from_intake] if behind_intake else [])
    app[DEPS] = deps
    app[ENGINE] = app[INTAKE] = Engine(deps)
    app[SESSIONS] = SessionKeeper(settings)
    app.cleanup_ctx.append(_resources)
    if behind_intake:
        app.router.add_post("/internal/counters", internal.receive_counters)
        app.router.add_post("/internal/record", internal.receive_alerts)
    add_webhook_routes(app, settings)
    app.router.add_get("/api/v1/incidents", api.list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", api.get_incident)
    app.router.add_get("/api/v1/incidents/{id}/postmortem", incidents_api.postmortem)
    app.router.add_post("/api/v1/incidents/{id}/{action:acknowledge|notes|root-cause|close}",
                        incidents_api.incident_command)
    app.router.add_get("/api/v1/stats", incidents_api.stats)
    app.router.add_get("/api/v1/approvals", approvals_api.list_approvals)
    app.router.add_get("/api/v1/approvals/{id}", approvals_api.get_approval)
    app.router.add_post("/api/v1/approvals/{id}/approve", approvals_api.approve)
    app.router.add_post("/api/v1/approvals/{id}/reject", approvals_api.reject)
    app.router.add_get("/approvals", console.show)
    app.router.add_post("/approvals/login", console.login)
    app.router.add_post("/approvals/logout", console.logout)
    app.router.add_post("/approvals/{id}/decide", console.decide)
    app.router.add_get("/api/v1/audit", api.list_audit)
    app.router.add_get("/api/v1/killswitch", api.get_killswitch)
    app.router.add_post("/api/v1/killswitch", api.set_killswitch)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    return app
