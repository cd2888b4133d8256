"""`build_listeners(settings)`: the core's aiohttp applications, one per listener; the admin
listener's cleanup context owns every resource they share."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

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
from remediator.stores.archive import S3Archive
from remediator.stores.base import Store
from remediator.stores.coordination import Coordination
from remediator.stores.memory import InProcessCoordination
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.purge import Purger, PurgeSchedule
from remediator.stores.redis import RedisCoordination
from remediator.stores.sqlite.store import SqliteStore
from remediator.web.keys import DEPS, ENGINE
from remediator.web.routes import admin_app, internal_app, public_app


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
    purge = purge_schedule(deps, aws)
    purge.start()
    try:
        yield
    finally:
        await purge.stop()
        await engine.stop()
        await aws.close()
        await targets.close()
        await deps.actions.http.close()
        await deps.coordination.close()
        await deps.store.close()


def purge_schedule(deps: Deps, aws: AwsClients) -> PurgeSchedule:
    """Retention's passes, exporting to the archive first when one is configured."""
    retention = deps.settings.retention
    archive = S3Archive(retention.archive, aws) if retention.archive.enabled else None
    purger = Purger(deps.store, retention, deps.clock, archive=archive, metrics=deps.metrics)
    return PurgeSchedule(purger, deps.coordination, deps.holder)


@dataclass(frozen=True, slots=True)
class Listeners:
    """The core's apps. `admin` opens and closes what they share: set it up first, clean it up last."""

    public: web.Application  # the webhooks, when the core runs without intake processes
    admin: web.Application
    internal: web.Application  # the hand-off from intake processes, on a private unix socket

    @property
    def deps(self) -> Deps:
        return self.admin[DEPS]

    @property
    def engine(self) -> Engine:
        return self.admin[ENGINE]


def build_listeners(settings: Settings, deps: Deps | None = None) -> Listeners:
    """One engine and one set of resources behind every listener of the core."""
    deps = deps or build_deps(settings)
    engine = Engine(deps)
    admin = admin_app(deps, engine)
    admin.cleanup_ctx.append(_resources)
    return Listeners(public_app(settings, deps, engine), admin, internal_app(settings, deps, engine))
