"""The daemon's listeners, one route table each; no route is on two of them.

- the **public webhook listener** (`listen`; the intake processes, or the core without them):
  the webhooks and `/healthz`, nothing else. It is the one port the internet-facing load
  balancer exposes to SNS.
- the **admin listener** (`admin_listen`; the core): the JSON API, the console under its path
  prefix, `/metrics`, `/readyz`, `/healthz`. People's requests reach it directly, never through
  the daemon's own code: no relay can mix one person's session with another's.
- the **internal socket** (the core's private unix socket): intake processes hand it parsed
  alerts and counters. No person's request reaches it.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.settings import Settings
from remediator.web import (
    api,
    approvals_api,
    controls_api,
    health,
    incidents_api,
    internal,
    sns,
    webhooks,
)
from remediator.web.common import json_response
from remediator.web.console import console_app
from remediator.web.keys import DEPS, ENGINE, INTAKE, Intake
from remediator.web.sessions import PATH as CONSOLE


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What a listener does not serve is a JSON 404 (or 405): the same body as every other error."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return json_response({"error": "not_found", "detail": "nothing is served at this path on this listener"},
                             404)
    except web.HTTPMethodNotAllowed as exc:
        allowed = sorted(exc.allowed_methods)
        return json_response({"error": "method_not_allowed", "detail": f"allowed: {', '.join(allowed)}"}, 405,
                             {"Allow": ",".join(allowed)})


def add_webhook_routes(app: web.Application, settings: Settings) -> None:
    """The intake routes: served by an intake process, or by the core when it runs without one."""
    app.router.add_post(settings.alertmanager.path, webhooks.alertmanager)
    sns.add_sns_routes(app, settings)


def public_app(settings: Settings, deps: Deps, intake: Intake) -> web.Application:
    """The public webhook listener: webhooks and `/healthz`; everything else is a 404."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1, middlewares=[json_errors])
    app[DEPS] = deps
    app[INTAKE] = intake
    add_webhook_routes(app, settings)
    app.router.add_get("/healthz", health.healthz)
    return app


def admin_app(deps: Deps, engine: Engine) -> web.Application:
    """The admin listener: the API, the console, health and metrics. Served by the core only."""
    app = web.Application(middlewares=[json_errors])
    app[DEPS] = deps
    app[ENGINE] = engine
    add_api_routes(app.router)
    app.add_subapp(CONSOLE, console_app(deps, engine))
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics_handler(deps, engine))
    return app


def add_api_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/incidents", api.list_incidents)
    router.add_get("/api/v1/incidents/{id}", api.get_incident)
    router.add_get("/api/v1/incidents/{id}/postmortem", incidents_api.postmortem)
    router.add_get("/api/v1/incidents/{id}/report", incidents_api.postmortem)
    router.add_get("/api/v1/incidents/{id}/declaration", incidents_api.declaration)
    router.add_post("/api/v1/incidents/{id}/deadlines", incidents_api.deadline)
    router.add_post("/api/v1/incidents/{id}/{action:acknowledge|notes|root-cause|phase|checklist|roles|"
                    "postmortem-fields|prevention-actions|close}", incidents_api.incident_command)
    router.add_get("/api/v1/stats", incidents_api.stats)
    router.add_get("/api/v1/approvals", approvals_api.list_approvals)
    router.add_get("/api/v1/approvals/{id}", approvals_api.get_approval)
    router.add_post("/api/v1/approvals/{id}/approve", approvals_api.approve)
    router.add_post("/api/v1/approvals/{id}/reject", approvals_api.reject)
    router.add_get("/api/v1/audit", api.list_audit)
    router.add_get("/api/v1/killswitch", controls_api.get_killswitch)
    router.add_post("/api/v1/killswitch", controls_api.set_killswitch)
    router.add_get("/api/v1/circuits", controls_api.list_circuits)
    router.add_post("/api/v1/circuits/close", controls_api.close_circuit)
    router.add_get("/api/v1/pauses", controls_api.list_pauses)
    router.add_post("/api/v1/pauses", controls_api.add_pause)
    router.add_post("/api/v1/pauses/end", controls_api.end_pause)
    router.add_get("/api/v1/maintenance", controls_api.list_windows)
    router.add_post("/api/v1/maintenance", controls_api.add_window)
    router.add_post("/api/v1/maintenance/end", controls_api.end_window)


def internal_app(settings: Settings, deps: Deps, engine: Engine) -> web.Application:
    """The core's private socket: what intake processes hand over (parsed alerts, counters)."""
    app = web.Application(client_max_size=internal.handoff_limit(settings.max_body_bytes), middlewares=[json_errors])
    app[DEPS] = deps
    app[ENGINE] = engine
    app.router.add_post("/internal/counters", internal.receive_counters)
    app.router.add_post("/internal/record", internal.receive_alerts)
    return app
