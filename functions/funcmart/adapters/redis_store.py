"""Redis: the product cache, with a small circuit breaker so an outage costs one timeout."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from funcmart.domain.errors import DependencyUnavailable

log = logging.getLogger(__name__)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


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
        try:
            raw = self._guard.call("cache get", self._guard.client.get, key)
        except DependencyUnavailable:
            return None  # the guard has logged the outage
        except redis.ResponseError as exc:  # something else lives there (e.g. WRONGTYPE)
            log.warning("redis refused cache get: %s", exc)
            self._discard(key)
            return None
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
