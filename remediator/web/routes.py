"""The webhook routes, in one place for the two apps that serve them (core and intake process)."""

from __future__ import annotations

from aiohttp import web

from remediator.settings import Settings
from remediator.web import sns, webhooks


def add_webhook_routes(app: web.Application, settings: Settings) -> None:
    """The intake routes: served by an intake process, or by the core when it runs without one."""
    app.router.add_post(settings.alertmanager.path, webhooks.alertmanager)
    sns.add_sns_routes(app, settings)
