"""redis.* actions against a real Redis, on keys under this test's own prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from remediator.actions.redis.diagnostics import RedisDiagnostics, RedisDiagnosticsParams
from remediator.actions.redis.sessions import InvalidateParams, InvalidateSessions
from remediator.model import Outcome, Risk
from tests.actions.conftest import ContextFactory, Notes

pytestmark = pytest.mark.integration


@pytest.fixture
async def sessions(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """1000 sessions of u1, 150 of u10 (a prefix of neither), 10 cache keys, all under the prefix."""
    client = aioredis.from_url(redis_url)
    async with client.pipeline(transaction=False) as pipe:
        for i in range(1000):
            pipe.set(f"{redis_prefix}sess:user:u1:{i}", "{}")
        for i in range(150):
            pipe.set(f"{redis_prefix}sess:user:u10:{i}", "{}")
        for i in range(10):
            pipe.set(f"{redis_prefix}cache:{i}", "x")
        await pipe.execute()
    yield client
    await client.aclose()


async def _count(client: aioredis.Redis, match: str) -> int:
    return len([k async for k in client.scan_iter(match=match, count=1000)])


def _targets(redis_url: str) -> dict[str, object]:
    return {"redis": {"sessions": {"url": redis_url}}}


async def test_one_users_sessions_are_unlinked_in_batches_and_nothing_else(
    sessions: aioredis.Redis, redis_url: str, redis_prefix: str, action_context: ContextFactory
) -> None:
    params = InvalidateParams(target="sessions", pattern=f"{redis_prefix}sess:user:<user>:*", user="u1", batch=100)
    action = InvalidateSessions()
    assert action.risk is Risk.HIGH  # everyone matching is logged out: held for approval
    planned = await action.plan_calls(params, action_context(_targets(redis_url), dry_run=True))
    assert planned[0].args["keys"] == 1000 and await _count(sessions, f"{redis_prefix}sess:*") == 1150
    execution = await action.run(params, action_context(_targets(redis_url)))
    assert execution.outcome is Outcome.SUCCEEDED
    assert (execution.detail["deleted"], execution.detail["truncated"]) == (1000, False)
    assert await _count(sessions, f"{redis_prefix}sess:user:u1:*") == 0
    assert await _count(sessions, f"{redis_prefix}sess:user:u10:*") == 150
    assert await _count(sessions, f"{redis_prefix}cache:*") == 10


async def test_a_run_stops_at_max_keys(
    sessions: aioredis.Redis, redis_url: str, redis_prefix: str, action_context: ContextFactory
) -> None:
    params = InvalidateParams(target="sessions", pattern=f"{redis_prefix}sess:*", batch=100, max_keys=250)
    execution = await InvalidateSessions().run(params, action_context(_targets(redis_url)))
    assert (execution.detail["deleted"], execution.detail["truncated"]) == (250, True)
    assert await _count(sessions, f"{redis_prefix}sess:*") == 900


@pytest.mark.parametrize(("pattern", "user"), [
    ("*", None), ("s*", None), ("sess:<user>:*", None), ("sess:*", "u1"), ("sess:<user>:*", "u1*"),
    ("sess:<user>:*", "u1 OR 1"), ("sess:<other>:*", None), ("sess:{labels.x}", None),
])
def test_patterns_and_users_that_could_reach_other_keys_are_refused(pattern: str, user: str | None) -> None:
    with pytest.raises(ValidationError):
        InvalidateParams(target="sessions", pattern=pattern, user=user)


async def test_diagnostics_note_info_slowlog_and_the_biggest_sampled_keys(
    sessions: aioredis.Redis, redis_url: str, redis_prefix: str, action_context: ContextFactory
) -> None:
    await sessions.set(f"{redis_prefix}big", "x" * 200_000)
    ctx = action_context(_targets(redis_url))
    execution = await RedisDiagnostics().run(RedisDiagnosticsParams(target="sessions", sample=100_000), ctx)
    assert execution.outcome is Outcome.SUCCEEDED
    assert isinstance(ctx.timeline, Notes)
    sections = {data["section"]: data for _, _, data in ctx.timeline.notes}
    assert set(sections) == {"info", "slowlog", "biggest_keys"}
    assert "used_memory" in sections["info"]["info"]["memory"]
    assert f"{redis_prefix}big" in [k["key"] for k in sections["biggest_keys"]["keys"]]


async def test_an_unreachable_target_fails_retryably(action_context: ContextFactory) -> None:
    ctx = action_context({"redis": {"sessions": {"url": "redis://127.0.0.1:1/0", "timeout": "200ms"}}})
    execution = await RedisDiagnostics().run(RedisDiagnosticsParams(target="sessions"), ctx)
    assert execution.outcome is Outcome.FAILED and execution.retryable
