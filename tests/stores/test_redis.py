"""What only Redis has to prove: atomicity across replicas and bounded calls (beyond the contract)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Literal

import pytest

from remediator.errors import CoordinationUnavailable
from remediator.model import DecisionReason
from remediator.settings import CoordinationSettings
from remediator.stores.coordination import Quota
from remediator.stores.redis import RedisCoordination
from tests.conftest import T0
from tests.support.harness import with_address
from tests.support.proxy import TcpProxy


@pytest.fixture
async def replicas(redis_url: str, redis_prefix: str) -> AsyncIterator[list[RedisCoordination]]:
    # A generous timeout: these tests are about atomicity under concurrency, not about latency on a
    # loaded CI machine (dozens of connections open at once).
    settings = CoordinationSettings(url=redis_url, key_prefix=redis_prefix, timeout=timedelta(seconds=5))
    backends = [RedisCoordination(settings) for _ in range(3)]
    for backend in backends:
        await backend.open()
    yield backends
    for backend in backends:
        await backend.close()


async def test_concurrent_admissions_never_exceed_a_limit_nor_spend_a_denied_budget(
    replicas: list[RedisCoordination],
) -> None:
    budget = Quota("budget", 10, timedelta(hours=1), DecisionReason.BUDGET_EXHAUSTED)

    def rate(i: int) -> Quota:
        return Quota(f"rate:p:{i % 2}", 100, timedelta(hours=1), DecisionReason.RATE_LIMITED)

    results = await asyncio.gather(*(
        replicas[i % 3].admit([rate(i), budget], T0) for i in range(60)))
    assert sum(r.admitted for r in results) == 10
    # The rate windows counted exactly the admitted ones: denied requests spent nothing.
    counted = sum(r.admitted for i, r in enumerate(results) if i % 2 == 0)
    full = Quota("rate:p:0", counted, timedelta(hours=1), DecisionReason.RATE_LIMITED)
    assert not (await replicas[0].admit([full], T0)).admitted
    assert (await replicas[0].admit([Quota(full.key, counted + 1, full.window, full.reason)], T0)).admitted


async def test_only_one_replica_holds_a_target_and_tokens_only_grow(replicas: list[RedisCoordination]) -> None:
    ttl = timedelta(minutes=5)
    leases = await asyncio.gather(*(
        replicas[i % 3].acquire_lease("target:db-1", f"replica-{i % 3}", ttl, T0) for i in range(30)))
    held = [lease for lease in leases if lease is not None]
    assert len({lease.holder for lease in held}) == 1  # one holder (who may renew its own lease)
    tokens = [lease.token for lease in held]
    assert len(set(tokens)) == len(tokens)  # every grant has a token of its own, in server order
    assert await replicas[1].release_lease(max(held, key=lambda lease: lease.token))
    later = await replicas[2].acquire_lease("target:db-1", "replica-2", ttl, T0)
    assert later is not None and later.token > max(tokens)


async def test_an_unreachable_redis_fails_fast_and_recovers(redis_url: str, redis_prefix: str) -> None:
    proxy = TcpProxy("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]))
    coordination = RedisCoordination(CoordinationSettings(
        url=with_address(redis_url, await proxy.start()), key_prefix=redis_prefix, timeout=timedelta(seconds=0.3)))
    await coordination.open()
    try:
        await coordination.ping()
        modes: tuple[Literal["refuse", "blackhole"], ...] = ("refuse", "blackhole")
        for mode in modes:
            await proxy.cut(mode)
            started = time.monotonic()
            with pytest.raises(CoordinationUnavailable):
                await coordination.admit([Quota("budget", 1, timedelta(hours=1), DecisionReason.BUDGET_EXHAUSTED)],
                                         T0)
            assert time.monotonic() - started < 1.0
            await proxy.restore()
            await coordination.ping()  # no restart needed: the next call reconnects
    finally:
        await coordination.close()
        await proxy.close()
