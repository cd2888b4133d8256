"""redis.invalidate_sessions: delete session keys matching a pattern (and a user), SCAN + UNLINK.

Never KEYS: SCAN walks the keyspace in small steps and UNLINK frees memory off the main thread, so
a busy ElastiCache keeps answering the wards while sessions are dropped. High risk (everyone
matching is logged out): always held for approval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from pydantic import Field, model_validator
from redis.exceptions import RedisError

from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.actions.postgres.common import TARGET_NAME
from remediator.actions.targets import TargetUnavailable, target_connections, unknown_target
from remediator.model import Execution, FailureReason, Risk

# A literal prefix of at least 3 characters before any wildcard: never the whole keyspace. `<user>`
# stands for the `user` parameter (not `{user}`: braces are policy templates).
KEY_PATTERN = r"^[A-Za-z0-9_.:\-]{3,}[A-Za-z0-9_.:*?<>\-]{0,200}$"
USER_PLACEHOLDER = "<user>"
USER = r"^[A-Za-z0-9_.@:\-]{1,128}$"
REDIS_ERRORS = (TargetUnavailable, RedisError, OSError, TimeoutError)


async def unreachable(ctx: ActionContext, target: str) -> str | None:
    """Why the cache cannot be reached (one PING), or None."""
    try:
        client = await target_connections(ctx.deps).redis(target)
        await client.ping()
    except REDIS_ERRORS as exc:
        return f"target {target!r} cannot be reached: {type(exc).__name__}: {exc}"
    return None


class InvalidateParams(ActionParams):
    target: str = Field(pattern=TARGET_NAME, description="a name under targets.redis in settings")
    pattern: str = Field(pattern=KEY_PATTERN, description="glob of session keys; <user> stands for `user`")
    user: str | None = Field(None, pattern=USER)
    batch: int = Field(500, ge=10, le=10_000, description="SCAN COUNT and UNLINK batch size")
    max_keys: int = Field(100_000, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _user_placeholder(self) -> InvalidateParams:
        has_placeholder = USER_PLACEHOLDER in self.pattern
        if has_placeholder and self.user is None:
            raise ValueError(f"the pattern has {USER_PLACEHOLDER} but no user is given")
        if self.user is not None and not has_placeholder:
            raise ValueError(f"a user is given but the pattern has no {USER_PLACEHOLDER} placeholder")
        if ("<" in self.pattern.replace(USER_PLACEHOLDER, "")) or (">" in self.pattern.replace(USER_PLACEHOLDER, "")):
            raise ValueError(f"< and > only as {USER_PLACEHOLDER}")
        return self

    def glob(self) -> str:
        """The SCAN MATCH pattern, the user's glob characters escaped."""
        if self.user is None:
            return self.pattern
        return self.pattern.replace(USER_PLACEHOLDER, re.sub(r"([*?\[\]\\])", r"\\\1", self.user))


class InvalidateSessions(Action[InvalidateParams]):
    """Delete session keys matching a pattern, optionally one user's, in batches (SCAN + UNLINK).

    ```yaml
    type: redis.invalidate_sessions
    params:
      target: sessions
      pattern: "sess:user:<user>:*"
      user: "{labels.user_id}"
      batch: 500
    ```
    """

    type_name = "redis.invalidate_sessions"
    Params = InvalidateParams
    permissions = ("redis: +scan", "redis: +unlink", "redis: ~<session keys> (e.g. ~sess:*)")
    risk = Risk.HIGH

    def target(self, params: InvalidateParams) -> str:
        return f"redis:{params.target}"

    def refusal(self, params: InvalidateParams, ctx: ActionContext) -> str | None:
        return unknown_target(ctx.deps.settings.targets, "redis", params.target)

    async def precheck(self, params: InvalidateParams, ctx: ActionContext) -> str | None:
        return await unreachable(ctx, params.target)

    async def plan_calls(self, params: InvalidateParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        """SCAN only: how many keys would go now (up to max_keys), and a few of them."""
        matching: list[str] = []
        try:
            client = await target_connections(ctx.deps).redis(params.target)
            async for key in client.scan_iter(match=params.glob(), count=params.batch):
                matching.append(key.decode(errors="replace") if isinstance(key, bytes) else str(key))
                if len(matching) >= params.max_keys:
                    break
        except REDIS_ERRORS as exc:
            return [PlannedCall("redis", "SCAN+UNLINK", {"target": params.target, "match": params.glob(),
                                                         "live_state": f"not read: {exc}"})]
        return [PlannedCall("redis", "SCAN+UNLINK", {"target": params.target, "match": params.glob(),
                                                     "keys": len(matching), "sample": sorted(matching)[:5]})]

    async def run(self, params: InvalidateParams, ctx: ActionContext) -> Execution:
        try:
            client = await target_connections(ctx.deps).redis(params.target)
            deleted, truncated = await _unlink_matching(client, params)
        except REDIS_ERRORS as exc:
            return Execution.failed(FailureReason.CONNECTION, f"{params.target}: {type(exc).__name__}: {exc}",
                                    retryable=True)
        return Execution.succeeded(deleted=deleted, match=params.glob(), truncated=truncated)


async def _unlink_matching(client: aioredis.Redis, params: InvalidateParams) -> tuple[int, bool]:
    """UNLINK what SCAN finds, one batch at a time; stop at max_keys (True when it stopped there)."""
    deleted, cursor = 0, 0
    pending: list[Any] = []
    while True:
        cursor, keys = await client.scan(cursor=cursor, match=params.glob(), count=params.batch)
        pending += keys[: params.max_keys - deleted - len(pending)]
        while len(pending) >= params.batch or (pending and cursor == 0) or \
                (pending and deleted + len(pending) >= params.max_keys):
            chunk, pending = pending[: params.batch], pending[params.batch :]
            deleted += int(await client.unlink(*chunk))
        if deleted >= params.max_keys:
            return deleted, cursor != 0
        if cursor == 0:
            return deleted, False
