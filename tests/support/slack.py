"""A local fake of Slack's Web API `conversations.create`, over real HTTP on loopback.

It answers as Slack documents: HTTP 200 with `{"ok": true, "channel": {...}}`, or `{"ok": false,
"error": ...}` for a missing or wrong bot token (`not_authed` / `invalid_auth`), a name Slack
would refuse (`invalid_name_specials`, `invalid_name_maxlength`) and a name already taken
(`name_taken`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

NAME = re.compile(r"^[a-z0-9_-]+$")


@dataclass
class FakeSlack:
    token: str
    url: str = ""
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)  # every request's body, refused ones too

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body)
        auth = request.headers.get("Authorization", "")
        if not auth:
            return web.json_response({"ok": False, "error": "not_authed"})
        if auth != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        name = body.get("name", "")
        if len(name) > 80:
            return web.json_response({"ok": False, "error": "invalid_name_maxlength"})
        if not NAME.match(name):
            return web.json_response({"ok": False, "error": "invalid_name_specials"})
        if name in self.channels:
            return web.json_response({"ok": False, "error": "name_taken"})
        channel = {"id": f"C{len(self.channels) + 1:08d}", "name": name, "is_private": bool(body.get("is_private"))}
        self.channels[name] = channel
        return web.json_response({"ok": True, "channel": channel})


@asynccontextmanager
async def running_slack(token: str) -> AsyncIterator[FakeSlack]:
    slack = FakeSlack(token)
    app = web.Application()
    app.router.add_post("/api/conversations.create", slack.create)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    slack.url = f"http://127.0.0.1:{runner.addresses[0][1]}/api"
    try:
        yield slack
    finally:
        await runner.cleanup()
