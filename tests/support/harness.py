"""What integration tests share: Alertmanager payloads, a webhook receiver that counts, a test
action, policies on disk, and the daemon run in-process on real servers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import yaml
from aiohttp import web

from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.model import Execution

AM_TOKEN = "am-secret"
AM_HEADERS = {"Authorization": f"Bearer {AM_TOKEN}"}


def with_address(url: str, port: int, host: str = "127.0.0.1") -> str:
    """The same URL pointing at another host:port (a proxy in front of the server)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def am_alert(name: str, occurrence: str, *, starts_at: datetime | None = None, status: str = "firing",
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    """One Alertmanager alert; `occurrence` is its identity (fingerprint) and a label the policy reads."""
    start = starts_at or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return {
        "status": status, "fingerprint": occurrence, "startsAt": start.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "labels": {"alertname": name, "occurrence": occurrence, "instance": "db-1:9187", **(labels or {})},
        "annotations": {"summary": f"{name} {occurrence}"},
    }


def am_body(group_key: str, alerts: Sequence[dict[str, Any]]) -> bytes:
    return orjson.dumps({
        "version": "4", "groupKey": group_key, "receiver": "remediator", "status": "firing",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]}, "commonLabels": {}, "alerts": list(alerts),
        "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0,
    })


def write_policies(folder: Path, policies: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test.yaml").write_text(yaml.safe_dump({"policies": policies}), encoding="utf-8")
    return folder


def notify_policy(name: str = "notify-each", alertname: str = "Occurrence") -> dict[str, Any]:
    """Notify once per occurrence: no cooldown, so every occurrence must reach the receiver once."""
    return {
        "name": name, "severity": "P3", "match": {"source": "alertmanager", "alertname": alertname},
        "actions": [{"type": "notify.webhook", "params": {"to": "receiver", "text": "{labels.occurrence}"},
                     "guardrails": {"cooldown": "0s"}}],
    }


class Receiver:
    """A notify.webhook target that counts what it receives, by text; it can be made to hang."""

    def __init__(self, slow: tuple[str, float] = ("", 0.0)) -> None:
        self.slow_suffix, self.slow_seconds = slow  # texts ending so take this long to answer
        self.received: Counter[str] = Counter()
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received[body["text"]] += 1
        self.entered.set()
        if self.slow_suffix and body["text"].endswith(self.slow_suffix):
            await asyncio.sleep(self.slow_seconds)
        await self.gate.wait()
        return web.json_response({"ok": True})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def close(self) -> None:
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


class TouchParams(ActionParams):
    name: str


class TouchAction(Action[TouchParams]):
    """A test action that needs shared limits and only counts its runs.

    ```yaml
    type: test.touch
    params: {name: db-1}
    ```
    """

    type_name = "test.touch"
    Params = TouchParams

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()

    def target(self, params: TouchParams) -> str:
        return f"touch:{params.name}"

    async def plan_calls(self, params: TouchParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [PlannedCall("test", "touch", {"name": params.name})]

    async def run(self, params: TouchParams, ctx: ActionContext) -> Execution:
        self.runs[params.name] += 1
        return Execution.succeeded(fencing_token=ctx.fencing_token)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns something truthy; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        await asyncio.sleep(interval)


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
