"""Coordination on Redis: the shared limits, kill switch, flap counters and target leases of replicas.

Time is the caller's `now` (the engine's clock), stored as epoch milliseconds in sorted-set scores,
so Redis and the in-process implementation decide identically; key TTLs only collect garbage.
Everything that reads and then writes is one Lua script, hence atomic across replicas:

- `admit`: every quota checked, then every quota counted — or none, with the first that denied;
- `record_change`: add, trim the window, count;
- `acquire_lease`: free, expired or already ours → a new fencing token from INCR on a counter that
  never expires (strictly increasing per key, whoever holds the lease); `release_lease` only by
  the token that holds it.

Console sessions are plain keys (`s:<digest of the session id>`) whose TTL is the session's own.

Every call is bounded by `coordination.timeout`; a connection error, a timeout or any error from
Redis raises CoordinationUnavailable, so callers deny rather than act without limits.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from remediator.errors import CoordinationUnavailable
from remediator.settings import CoordinationSettings
from remediator.stores.circuits import Circuit
from remediator.stores.coordination import Admission, ConsoleSession, KillSwitch, Lease, Quota

T = TypeVar("T")

# KEYS: one sorted set per quota. ARGV: now, then per quota: limit, window, member ('' = count
# every admission), the admission's id (the request's, so a request already counted is admitted
# again without counting twice; else unique). Returns {1} or {0, index, retry_ms}.
ADMIT = """
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local at = 1 + (i - 1) * 4
  local limit, window, member = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), ARGV[at + 3]
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local ok = redis.call('ZCARD', KEYS[i]) < limit
  if member == '' then member = ARGV[at + 4] end
  if not ok and redis.call('ZSCORE', KEYS[i], member) then ok = true end
  if not ok then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    local retry = window
    if oldest[2] then retry = tonumber(oldest[2]) + window - now end
    return {0, i, retry}
  end
end
for i = 1, #KEYS do
  local at = 1 + (i - 1) * 4
  if ARGV[at + 3] ~= '' then
    redis.call('ZADD', KEYS[i], now, ARGV[at + 3])  -- a distinct target: counted once, its time renewed
  else
    redis.call('ZADD', KEYS[i], 'NX', now, ARGV[at + 4])  -- a request counted once, at its first time
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[at + 2])
end
return {1}
"""

# KEYS: the change window. ARGV: now, window, the change's id (counted once, at its first time).
# Returns the changes within the window.
RECORD_CHANGE = """
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: lease hash, token counter, lease index. ARGV: holder, now, ttl, lease name. Returns the
# fencing token, or nil when another holder's lease has not expired.
ACQUIRE = """
local now, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local current = redis.call('HMGET', KEYS[1], 'holder', 'expires')
if current[1] and tonumber(current[2]) > now and current[1] ~= ARGV[1] then return nil end
local token = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'expires', now + ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[4])
return token
"""

# KEYS: lease hash, lease index. ARGV: token, lease name. 1 when released, 0 when not ours.
RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


# KEYS: the circuit's hash, the set of circuits. ARGV: now, threshold, reason, circuit key.
# Returns the failures in a row; at or past the threshold the circuit (re)opens now.
COUNT_FAILURE = """
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[1], 'reason', ARGV[3])
if n >= tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'opened', ARGV[1]) end
redis.call('SADD', KEYS[2], ARGV[4])
return n
"""


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _ms_of(window: timedelta) -> int:
    return max(int(window.total_seconds() * 1000), 1)


class RedisCoordination:
    """`Coordination` on one Redis (ElastiCache) shared by every replica."""

    def __init__(self, settings: CoordinationSettings) -> None:
        self.settings = settings
        self.prefix = settings.key_prefix
        self.timeout = settings.timeout.total_seconds()
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    async def open(self) -> None:
        # Lazy: no connection is made here, so the daemon starts (and takes alerts) without Redis.
        self._client = aioredis.from_url(
            self.settings.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 1),  # one retry on a fresh connection after a server restart
            health_check_interval=30,
        )
        for name, body in (("admit", ADMIT), ("change", RECORD_CHANGE), ("acquire", ACQUIRE), ("release", RELEASE),
                           ("failure", COUNT_FAILURE)):
            self._scripts[name] = self._client.register_script(body)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            try:
                async with asyncio.timeout(self.timeout):
                    await client.aclose()
            except (RedisError, OSError, TimeoutError):
                pass

    async def _call(self, what: str, call: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        if self._client is None:
            raise CoordinationUnavailable("coordination is not open")
        try:
            async with asyncio.timeout(self.timeout):
                return await call(self._client)
        except TimeoutError as exc:
            raise CoordinationUnavailable(f"redis {what}: no answer within {self.timeout}s") from exc
        except (RedisError, OSError) as exc:
            raise CoordinationUnavailable(f"redis {what}: {type(exc).__name__}: {exc}") from exc

    def _key(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}{kind}{name}"

    async def ping(self) -> None:
        await self._call("ping", lambda r: r.ping())

    async def admit(self, quotas: Sequence[Quota], now: datetime, request_id: str = "") -> Admission:
        if not quotas:
            return Admission(True)
        keys = [self._key("q:", q.key) for q in quotas]
        admission = f"r:{request_id}" if request_id else f"u:{secrets.token_hex(8)}"
        args: list[Any] = [_ms(now)]
        for quota in quotas:
            args += [quota.limit, _ms_of(quota.window), quota.member or "", admission]
        reply = await self._call("admit", lambda r: self._scripts["admit"](keys=keys, args=args, client=r))
        if int(reply[0]) == 1:
            return Admission(True)
        return Admission(False, quotas[int(reply[1]) - 1], max(float(reply[2]) / 1000, 0.0))

    async def kill_switch(self) -> KillSwitch:
        raw = await self._call("kill switch", lambda r: r.get(self._key("kill")))
        if raw is None:
            return KillSwitch(False)
        data = orjson.loads(raw)
        at = datetime.fromisoformat(data["at"]) if data.get("at") else None
        return KillSwitch(bool(data["enabled"]), data.get("by", ""), data.get("reason", ""), at)

    async def set_kill_switch(self, state: KillSwitch) -> None:
        value = orjson.dumps({"enabled": state.enabled, "by": state.by, "reason": state.reason,
                              "at": state.at.astimezone(UTC).isoformat() if state.at else None})
        await self._call("set kill switch", lambda r: r.set(self._key("kill"), value))

    async def record_change(self, key: str, window: timedelta, now: datetime, member: str = "") -> int:
        args = [_ms(now), _ms_of(window), member or secrets.token_hex(8)]
        count = await self._call("record change", lambda r: self._scripts["change"](
            keys=[self._key("c:", key)], args=args, client=r))
        return int(count)

    async def recent_changes(self, key: str, window: timedelta, now: datetime) -> list[datetime]:
        found: list[Any] = await self._call("recent changes", lambda r: r.zrangebyscore(
            self._key("c:", key), f"({_ms(now) - _ms_of(window)}", "+inf", withscores=True))
        return [datetime.fromtimestamp(float(score) / 1000, UTC) for _, score in found]

    async def acquire_lease(self, key: str, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        keys = [self._key("l:", key), self._key("t:", key), self._key("leases")]
        args = [holder, _ms(now), _ms_of(ttl), key]
        token = await self._call("acquire lease", lambda r: self._scripts["acquire"](keys=keys, args=args, client=r))
        if token is None:
            return None
        return Lease(key, holder, int(token), now + ttl)

    async def release_lease(self, lease: Lease) -> bool:
        keys = [self._key("l:", lease.key), self._key("leases")]
        released = await self._call("release lease", lambda r: self._scripts["release"](
            keys=keys, args=[lease.token, lease.key], client=r))
        return int(released) == 1

    async def held_leases(self, now: datetime) -> list[Lease]:
        async def read(r: aioredis.Redis) -> list[Lease]:
            found_names: list[Any] = await r.zrangebyscore(self._key("leases"), f"({_ms(now)}", "+inf")
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in found_names]
            if not names:
                return []
            async with r.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(self._key("l:", name), "holder", "token", "expires")
                found = await pipe.execute()
            leases = []
            for name, (holder, token, expires) in zip(names, found, strict=True):
                if holder is not None and int(expires) > _ms(now):
                    leases.append(Lease(name, holder.decode(), int(token),
                                        datetime.fromtimestamp(int(expires) / 1000, UTC)))
            return leases

        return await self._call("held leases", read)

    async def start_session(self, session_id: str, session: ConsoleSession, now: datetime) -> None:
        value = orjson.dumps({"d": session.token_sha256, "exp": _ms(session.expires_at)})
        ttl = max(_ms(session.expires_at) - _ms(now), 1)
        await self._call("start session", lambda r: r.set(self._key("s:", session_id), value, px=ttl))

    async def find_session(self, session_id: str, now: datetime) -> ConsoleSession | None:
        raw = await self._call("find session", lambda r: r.get(self._key("s:", session_id)))
        if raw is None:
            return None
        data = orjson.loads(raw)
        session = ConsoleSession(str(data["d"]), datetime.fromtimestamp(int(data["exp"]) / 1000, UTC))
        return session if session.expires_at > now else None

    async def end_session(self, session_id: str) -> None:
        await self._call("end session", lambda r: r.delete(self._key("s:", session_id)))

    async def count_failure(self, key: str, now: datetime, threshold: int, reason: str) -> Circuit:
        keys, args = [self._key("cb:", key), self._key("circuits")], [_ms(now), threshold, reason, key]
        failures = int(await self._call("count failure", lambda r: self._scripts["failure"](
            keys=keys, args=args, client=r)))
        return Circuit(key, failures, now, reason, now if failures >= threshold else None)

    async def count_success(self, key: str) -> None:
        await self.close_circuit(key)

    async def circuit(self, key: str) -> Circuit | None:
        found: dict[Any, Any] = await self._call("circuit", lambda r: r.hgetall(self._key("cb:", key)))
        return _circuit(key, found)

    async def circuits(self) -> list[Circuit]:
        async def read(r: aioredis.Redis) -> list[Circuit]:
            members: set[Any] = await r.smembers(self._key("circuits"))
            names = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            async with r.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(self._key("cb:", name))
                found = await pipe.execute()
            return [c for name, data in zip(names, found, strict=True) if (c := _circuit(name, data)) is not None]

        return await self._call("circuits", read)

    async def close_circuit(self, key: str) -> bool:
        async def close(r: aioredis.Redis) -> bool:
            async with r.pipeline(transaction=True) as pipe:
                pipe.delete(self._key("cb:", key))
                pipe.srem(self._key("circuits"), key)
                deleted, _ = await pipe.execute()
            return int(deleted) > 0

        return await self._call("close circuit", close)


    async def put_control(self, kind: str, name: str, value: bytes) -> None:
        await self._call("put control", lambda r: r.hset(self._key("ctl:", kind), name, value))

    async def controls(self, kind: str) -> dict[str, bytes]:
        found: dict[Any, Any] = await self._call("controls", lambda r: r.hgetall(self._key("ctl:", kind)))
        return {(k.decode() if isinstance(k, bytes) else str(k)): (v if isinstance(v, bytes) else str(v).encode())
                for k, v in found.items()}

    async def remove_control(self, kind: str, name: str) -> bool:
        removed = await self._call("remove control", lambda r: r.hdel(self._key("ctl:", kind), name))
        return int(removed) > 0

def _circuit(key: str, found: dict[Any, Any]) -> Circuit | None:
    data = {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in found.items()}
    if "failures" not in data:
        return None
    opened = data.get("opened")
    return Circuit(key, int(data["failures"]), datetime.fromtimestamp(int(data["last"]) / 1000, UTC),
                   data.get("reason", ""), datetime.fromtimestamp(int(opened) / 1000, UTC) if opened else None)
