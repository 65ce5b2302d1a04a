"""Redis: the product cache, carts and rate limits, behind a small circuit breaker so an
outage costs one timeout. Every multi-step change is one Lua script, so it is atomic.

A cache hit costs one round trip: the rate limiter's script also reads the cache entries the
request is about to read (`RateLimiter.hit(..., cached_products)`), and the product cache
answers from that read for the rest of the request. The read-ahead lives in a context
variable: the HTTP entry point runs each request in a context of its own, so it never
outlives the request nor crosses threads."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import redis

from funcmart.adapters import tracing
from funcmart.domain.cart import Cart
from funcmart.domain.errors import DependencyUnavailable
from funcmart.domain.ratelimit import RateDecision, RatePolicy

log = logging.getLogger(__name__)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# Cache entries (key -> raw value, None when absent) read ahead in this request's rate-limit call.
_READ_AHEAD: ContextVar[dict[str, str | None] | None] = ContextVar("redis_read_ahead", default=None)


def connect(url: str, socket_timeout: float) -> redis.Redis:
    """A client for `url` with short timeouts: Redis is a cache, never worth a slow answer."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        health_check_interval=30,
        decode_responses=True,
    )


class Breaker:
    """Remembers an outage for `retry_after` seconds so calls fail fast meanwhile."""

    def __init__(self, retry_after: float) -> None:
        self._retry_after = retry_after
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self._retry_after

    def reset(self) -> None:
        self._open_until = 0.0

    @property
    def retry_after(self) -> int:
        return max(1, round(self._retry_after))


class RedisGuard:
    """Runs Redis calls behind the breaker; raises DependencyUnavailable when Redis is out."""

    def __init__(self, client: redis.Redis, breaker: Breaker) -> None:
        self.client = client
        self.breaker = breaker

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.breaker.open:
            raise DependencyUnavailable(
                "Redis is unavailable", retry_after=self.breaker.retry_after
            )
        try:
            if tracing.enabled():
                with tracing.span(f"redis {what}", "client", {"db.system.name": "redis"}):
                    result = fn(*args, **kwargs)
            else:
                result = fn(*args, **kwargs)
        except REDIS_ERRORS as exc:
            self.breaker.trip()
            log.warning("redis unavailable during %s: %s", what, exc)
            raise DependencyUnavailable(
                "Redis is unavailable", retry_after=self.breaker.retry_after
            ) from exc
        self.breaker.reset()
        return result

    def ping(self) -> bool:
        try:
            return bool(self.call("ping", self.client.ping))
        except DependencyUnavailable:
            return False


@contextlib.contextmanager
def _as_miss(what: str) -> Iterator[None]:
    """A cache failure never fails the request: an outage or a refused command is a miss."""
    try:
        yield
    except DependencyUnavailable:
        pass  # the guard has logged the outage
    except redis.RedisError as exc:
        log.warning("redis refused %s: %s", what, exc)


class RedisProductCache:
    """ProductCache: `product:{id}` JSON with a TTL. Any Redis failure reads as a miss.

    A write does not delete the entry but replaces it with a short-lived tombstone, and a
    read-through fill only writes where nothing is (SET NX). So a read that fetched the
    product just before a write committed cannot put its stale copy back afterwards: it
    finds the tombstone and leaves it. Reads in the tombstone's few seconds go to DynamoDB.
    """

    TOMBSTONE = "-"

    def __init__(self, guard: RedisGuard, ttl_seconds: int, tombstone_seconds: int = 5) -> None:
        self._guard = guard
        self._ttl = ttl_seconds
        self._tombstone_ttl = tombstone_seconds

    @staticmethod
    def key(product_id: str) -> str:
        return f"product:{product_id}"

    def get(self, product_id: str) -> dict[str, Any] | None:
        key = self.key(product_id)
        ahead = _READ_AHEAD.get()
        if ahead is not None and key in ahead:
            return self._decode(key, ahead.pop(key))  # read once: a later get asks Redis
        try:
            raw = self._guard.call("cache get", self._guard.client.get, key)
        except DependencyUnavailable:
            return None  # the guard has logged the outage
        except redis.ResponseError as exc:  # something else lives there (e.g. WRONGTYPE)
            log.warning("redis refused cache get: %s", exc)
            self._discard(key)
            return None
        return self._decode(key, raw)

    def _decode(self, key: str, raw: str | None) -> dict[str, Any] | None:
        if raw is None or raw == self.TOMBSTONE:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            self._discard(key)  # unreadable: make room for a fresh fill
            return None
        return value

    def _discard(self, key: str) -> None:
        with _as_miss("cache discard"):
            self._guard.call("cache discard", self._guard.client.delete, key)

    def put(self, product_id: str, value: dict[str, Any]) -> None:
        with _as_miss("cache put"):
            self._guard.call(
                "cache put",
                self._guard.client.set,
                self.key(product_id),
                json.dumps(value, separators=(",", ":")),
                ex=self._ttl,
                nx=True,
            )

    def invalidate(self, *product_ids: str) -> None:
        if not product_ids:
            return
        # When Redis is out the entry expires with its TTL.
        with _as_miss("cache invalidate"):
            self._guard.call("cache invalidate", self._tombstones, product_ids)

    def _tombstones(self, product_ids: tuple[str, ...]) -> None:
        pipe = self._guard.client.pipeline(transaction=False)
        for p in product_ids:
            pipe.set(self.key(p), self.TOMBSTONE, ex=self._tombstone_ttl)
        pipe.execute()


# ---------------------------------------------------------------------------- carts

# KEYS[1] the cart; ARGV product id, quantity, max lines, ttl seconds. 1 done, 0 cart full.
_SET_LINE = """
local qty = tonumber(ARGV[2])
if qty == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
     and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
  end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS[1] the cart; ARGV pairs of product id and the quantity that was ordered.
_REMOVE_ORDERED = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
"""


def _refusal_as_unavailable(guard: RedisGuard) -> Any:
    """`guard.call`, where a command Redis refuses (a server without scripting, a full
    memory, a proxy) is DependencyUnavailable as an outage is, without tripping the breaker."""

    def call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return guard.call(what, fn, *args, **kwargs)
        except redis.RedisError as exc:
            log.warning("redis refused %s: %s", what, exc)
            raise DependencyUnavailable(f"Redis refused {what}") from exc

    return call


class RedisCartStore:
    """CartStore: `cart:{customer}`, a hash of product id to quantity, with a TTL renewed on
    every write. A Redis outage raises DependencyUnavailable (503): a cart cannot be guessed."""

    def __init__(self, guard: RedisGuard, ttl_seconds: int) -> None:
        self._guard = guard
        self._ttl = ttl_seconds
        self._call = _refusal_as_unavailable(guard)
        self._set_line = guard.client.register_script(_SET_LINE)
        self._remove_ordered = guard.client.register_script(_REMOVE_ORDERED)

    @staticmethod
    def key(customer: str) -> str:
        return f"cart:{customer}"

    def get(self, customer: str) -> Cart:
        raw: dict[str, str] = self._call("cart get", self._guard.client.hgetall, self.key(customer))
        quantities = {}
        for product_id, qty in raw.items():
            if qty.isdigit() and int(qty) > 0:
                quantities[product_id] = int(qty)
        return Cart(customer, quantities)

    def set_quantity(self, customer: str, product_id: str, quantity: int, max_lines: int) -> bool:
        done = self._call(
            "cart set",
            self._set_line,
            keys=[self.key(customer)],
            args=[product_id, quantity, max_lines, self._ttl],
        )
        return bool(int(done))

    def remove(self, customer: str, product_id: str) -> None:
        pipe = self._guard.client.pipeline(transaction=True)
        pipe.hdel(self.key(customer), product_id)
        pipe.expire(self.key(customer), self._ttl)
        self._call("cart remove", pipe.execute)

    def clear(self, customer: str) -> None:
        self._call("cart clear", self._guard.client.delete, self.key(customer))

    def remove_ordered(self, customer: str, ordered: dict[str, int]) -> None:
        if not ordered:
            return
        args: list[str] = []
        for product_id, qty in ordered.items():
            args += [product_id, str(qty)]
        self._call(
            "cart remove ordered", self._remove_ordered, keys=[self.key(customer)], args=args
        )


# ------------------------------------------------------------------------ rate limits

# GCRA (see funcmart.domain.ratelimit), on the Redis server's clock so that every function
# instance agrees. KEYS[1] the caller's key; ARGV emission interval and period, in ms.
# Returns allowed (1/0), remaining, ms until the budget is full again, ms until next allowed;
# when allowed, then the value of each further key (KEYS[2..]; false when absent, 0 when it
# holds something other than a string): the cache entries the request reads, in the same trip.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, 0, tostring(tat - now), tostring(allow_at - now)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now))
local out = {1, math.floor((now - allow_at) / interval + 1e-9), tostring(new_tat - now), '0'}
for i = 2, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t == 'string' then
    out[#out + 1] = redis.call('GET', KEYS[i])
  elseif t == 'none' then
    out[#out + 1] = false
  else
    out[#out + 1] = 0
  end
end
return out
"""


class RedisRateLimiter:
    """RateLimiter: one GCRA Lua script per request, `ratelimit:{class}:{caller}` keys that
    expire as soon as the caller's budget is full again. The same call reads the cache entries
    of `cached_products` for RedisProductCache (see the module's docstring)."""

    def __init__(self, guard: RedisGuard) -> None:
        self._guard = guard
        self._script = guard.client.register_script(_GCRA)

    def hit(
        self, key: str, policy: RatePolicy, cached_products: Sequence[str] = ()
    ) -> RateDecision:
        reads = [RedisProductCache.key(p) for p in cached_products]
        _READ_AHEAD.set(None)
        allowed, remaining, reset_ms, retry_ms, *values = _refusal_as_unavailable(self._guard)(
            "rate limit",
            self._script,
            keys=[f"ratelimit:{key}", *reads],
            args=[repr(policy.interval_ms), policy.period_seconds * 1000],
        )
        return _decide(policy, reads, allowed, remaining, reset_ms, retry_ms, values)


def _decide(
    policy: RatePolicy,
    reads: list[str],
    allowed: Any,
    remaining: Any,
    reset_ms: Any,
    retry_ms: Any,
    values: list[Any],
) -> RateDecision:
    """The script's answer as a decision; the entries it read ahead kept for this request."""
    ok = int(allowed) == 1
    if ok and reads:
        # An entry of another type is left to the cache's own read, which clears it.
        ahead = {
            k: v for k, v in zip(reads, values, strict=False) if v is None or isinstance(v, str)
        }
        _READ_AHEAD.set(ahead)
    return RateDecision(
        allowed=ok,
        limit=policy.limit,
        remaining=max(0, int(remaining)),
        reset_seconds=math.ceil(float(reset_ms) / 1000),
        retry_after_seconds=0 if ok else max(1, math.ceil(float(retry_ms) / 1000)),
    )


def read_ahead(product_id: str) -> str | None:
    """The raw cache entry of `product_id` this request's rate-limit call read, if any (not
    consumed: the cache's own `get` still finds it)."""
    ahead = _READ_AHEAD.get()
    return ahead.get(RedisProductCache.key(product_id)) if ahead else None


class AsyncRedisRateLimiter:
    """AsyncRateLimiter: the same script and keys as RedisRateLimiter, run from the event loop
    (funcmart.adapters.redis_loop), so an event loop never blocks on the round trip. It shares
    the synchronous client's breaker: an outage seen by either fails both fast."""

    def __init__(self, url: str, socket_timeout: float, breaker: Breaker) -> None:
        self._url = url
        # On an event loop a command's timer also runs while the loop serves other requests:
        # under a burst, an answer waiting in the socket would time out (and trip the breaker
        # for every request) long before Redis is slow. So the loop waits longer than a thread.
        self._timeout = max(1.0, 4 * socket_timeout)
        self._breaker = breaker
        self._script: Any = None

    def _loop_script(self) -> Any:
        """The script over the event loop's connections (built at the first hit: the module
        and hiredis load only where a host serves on a loop)."""
        if self._script is None:
            from funcmart.adapters.redis_loop import LoopScript

            self._script = LoopScript(self._url, _GCRA, self._timeout)
        return self._script

    async def hit(
        self, key: str, policy: RatePolicy, cached_products: Sequence[str] = ()
    ) -> RateDecision:
        reads = [RedisProductCache.key(p) for p in cached_products]
        _READ_AHEAD.set(None)
        if self._breaker.open:
            raise DependencyUnavailable(
                "Redis is unavailable", retry_after=self._breaker.retry_after
            )
        try:
            call = self._loop_script()(
                keys=[f"ratelimit:{key}", *reads],
                args=[repr(policy.interval_ms), policy.period_seconds * 1000],
            )
            if tracing.enabled():  # the span RedisGuard gives the synchronous call
                with tracing.span("redis rate limit", "client", {"db.system.name": "redis"}):
                    answer = await call
            else:
                answer = await call
        except REDIS_ERRORS as exc:
            self._breaker.trip()
            log.warning("redis unavailable during rate limit: %s", exc)
            raise DependencyUnavailable(
                "Redis is unavailable", retry_after=self._breaker.retry_after
            ) from exc
        except redis.RedisError as exc:
            log.warning("redis refused rate limit: %s", exc)
            raise DependencyUnavailable("Redis refused rate limit") from exc
        self._breaker.reset()
        allowed, remaining, reset_ms, retry_ms, *values = answer
        return _decide(policy, reads, allowed, remaining, reset_ms, retry_ms, values)
