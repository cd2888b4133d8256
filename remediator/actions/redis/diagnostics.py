"""redis.diagnostics: a read-only snapshot of a Redis (ElastiCache) onto the incident timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from pydantic import Field

from remediator.actions.base import ActionContext, ActionParams, PlannedCall, ReadOnlyAction
from remediator.actions.postgres.common import TARGET_NAME
from remediator.actions.redis.sessions import REDIS_ERRORS, unreachable
from remediator.actions.targets import target_connections, unknown_target
from remediator.model import Execution, FailureReason

INFO_FIELDS = {
    "memory": ("used_memory", "used_memory_peak", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio"),
    "clients": ("connected_clients", "blocked_clients", "maxclients"),
    "stats": ("instantaneous_ops_per_sec", "evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses",
              "rejected_connections"),
}


class RedisDiagnosticsParams(ActionParams):
    target: str = Field(pattern=TARGET_NAME, description="a name under targets.redis in settings")
    sample: int = Field(1000, ge=10, le=100_000, description="keys sampled for the biggest ones")
    top: int = Field(10, ge=1, le=50)


class RedisDiagnostics(ReadOnlyAction[RedisDiagnosticsParams]):
    """Snapshot a Redis onto the incident timeline: INFO memory/clients/stats, SLOWLOG, biggest keys.

    The biggest keys are found by sampling (SCAN + MEMORY USAGE), never by walking everything.
    Slow-log entries are recorded by command name and duration only (their arguments may hold data).

    ```yaml
    type: redis.diagnostics
    params: {target: sessions, sample: 1000}
    ```
    """

    type_name = "redis.diagnostics"
    Params = RedisDiagnosticsParams
    permissions = ("redis: +info", "redis: +slowlog|get", "redis: +scan", "redis: +memory|usage")

    def target(self, params: RedisDiagnosticsParams) -> str:
        return f"redis:{params.target}"

    def refusal(self, params: RedisDiagnosticsParams, ctx: ActionContext) -> str | None:
        return unknown_target(ctx.deps.settings.targets, "redis", params.target)

    async def precheck(self, params: RedisDiagnosticsParams, ctx: ActionContext) -> str | None:
        return await unreachable(ctx, params.target)

    async def plan_calls(self, params: RedisDiagnosticsParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [PlannedCall("redis", op, {"target": params.target}) for op in
                ("INFO memory", "INFO clients", "INFO stats", "SLOWLOG GET", "SCAN + MEMORY USAGE")]

    async def run(self, params: RedisDiagnosticsParams, ctx: ActionContext) -> Execution:
        try:
            client = await target_connections(ctx.deps).redis(params.target)
            info = {section: await _info(client, section) for section in INFO_FIELDS}
            slowlog = [{"id": e["id"], "micros": e["duration"], "command": _command_name(e)}
                       for e in await client.slowlog_get(params.top)]
            biggest = await _biggest_keys(client, params.sample, params.top)
        except REDIS_ERRORS as exc:
            return Execution.failed(FailureReason.CONNECTION, f"{params.target}: {type(exc).__name__}: {exc}",
                                    retryable=True)
        note = ctx.timeline.note
        await note("diagnostics", f"redis {params.target}: memory {info['memory'].get('used_memory', '?')} bytes, "
                   f"{info['clients'].get('connected_clients', '?')} clients",
                   {"target": params.target, "section": "info", "info": info})
        await note("diagnostics", f"redis {params.target}: {len(slowlog)} slow-log entries",
                   {"target": params.target, "section": "slowlog", "entries": slowlog})
        await note("diagnostics", f"redis {params.target}: biggest of {params.sample} sampled keys",
                   {"target": params.target, "section": "biggest_keys", "keys": biggest})
        return Execution.succeeded(sections=["info", "slowlog", "biggest_keys"], sampled=params.sample,
                                   used_memory=info["memory"].get("used_memory"))


async def _info(client: aioredis.Redis, section: str) -> dict[str, Any]:
    found: dict[str, Any] = await client.info(section)
    return {name: found[name] for name in INFO_FIELDS[section] if name in found}


def _command_name(entry: dict[str, Any]) -> str:
    command = entry.get("command", b"")
    text = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
    return text.split(" ", 1)[0].upper()


async def _biggest_keys(client: aioredis.Redis, sample: int, top: int) -> list[dict[str, Any]]:
    keys: list[Any] = []
    async for key in client.scan_iter(count=min(sample, 1000)):
        keys.append(key)
        if len(keys) >= sample:
            break
    sizes: list[tuple[int, str]] = []
    for start in range(0, len(keys), 500):
        async with client.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 500]:
                pipe.memory_usage(key)
            found = await pipe.execute()
        for key, size in zip(keys[start : start + 500], found, strict=True):
            name = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
            sizes.append((int(size or 0), name))
    return [{"key": name, "bytes": size} for size, name in sorted(sizes, reverse=True)[:top]]
