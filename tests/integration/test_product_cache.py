"""The ProductCache port on the fake and a real Redis; the breaker when Redis is out."""

from __future__ import annotations

import collections
import contextvars
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from funcmart.adapters import redis_store
from funcmart.adapters.dynamodb.catalog import DynamoProductRepository
from funcmart.adapters.dynamodb.table import bind
from funcmart.adapters.redis_store import (
    Breaker,
    RedisGuard,
    RedisProductCache,
    RedisRateLimiter,
    connect,
)
from funcmart.domain.ratelimit import RatePolicy
from funcmart.ports import ProductCache
from funcmart.services import catalog
from tests.fakes import FakeCache, FakeProductRepository
from tests.support.builders import random_id
from tests.support.factories import a_product, random_product_id

TTL = 300
POLICY = RatePolicy(limit=1000, period_seconds=60)
REGION = "us-east-1"


class CountingClient:
    """A Redis client that counts the commands it was asked to send."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class FakeTime:
    """Stands in for the `time` module inside redis_store, so the breaker's clock is ours."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(redis_store, "time", clock)
    return clock


@pytest.fixture
def closed_port_url() -> str:
    """A Redis URL on a loopback port where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def real_cache(redis_url: str, redis_client: redis.Redis) -> Iterator[RedisProductCache]:
    redis_client.ping()  # its fixture has emptied the test database
    client = connect(redis_url, 1.0)
    yield RedisProductCache(RedisGuard(client, Breaker(5)), TTL)
    client.close()


@pytest.fixture(params=["fake", "redis"])
def cache(request: pytest.FixtureRequest) -> ProductCache:
    if request.param == "fake":
        return FakeCache()
    real: RedisProductCache = request.getfixturevalue("real_cache")
    return real


class TestProductCache:
    def test_a_value_put_is_got_back(self, cache: ProductCache) -> None:
        product = a_product()
        cache.put(product.id, product.to_dict())
        assert cache.get(product.id) == product.to_dict()

    def test_an_unknown_id_is_a_miss(self, cache: ProductCache) -> None:
        assert cache.get(random_product_id()) is None

    def test_invalidate_removes_every_id_named(self, cache: ProductCache) -> None:
        one, two, kept = (a_product() for _ in range(3))
        for p in (one, two, kept):
            cache.put(p.id, p.to_dict())
        cache.invalidate(one.id, two.id)
        cache.invalidate()
        cache.invalidate(random_product_id())
        assert cache.get(one.id) is None
        assert cache.get(two.id) is None
        assert cache.get(kept.id) == kept.to_dict()

    def test_a_fill_never_overwrites_an_entry(self, cache: ProductCache) -> None:
        product = a_product(stock=1)
        cache.put(product.id, product.to_dict())
        cache.put(product.id, {**product.to_dict(), "stock": 2})
        value = cache.get(product.id)
        assert value is not None
        assert value["stock"] == 1


class TestRedisProductCache:
    def test_a_read_that_raced_a_write_cannot_cache_its_stale_copy(
        self, real_cache: RedisProductCache
    ) -> None:
        # GIVEN a reader that missed and fetched version 1 from the table
        v1 = a_product()
        assert real_cache.get(v1.id) is None
        # WHEN a writer commits version 2 and invalidates before the reader fills the cache
        real_cache.invalidate(v1.id)
        real_cache.put(v1.id, v1.to_dict())
        # THEN the stale copy was refused: the next read goes to the table
        assert real_cache.get(v1.id) is None

    def test_entries_live_under_product_keys_with_the_ttl(
        self, real_cache: RedisProductCache, redis_client: redis.Redis
    ) -> None:
        product = a_product()
        real_cache.put(product.id, product.to_dict())
        assert redis_client.exists(f"product:{product.id}") == 1
        assert 0 < redis_client.ttl(f"product:{product.id}") <= TTL

    @pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "null", '"text"'])
    def test_an_entry_that_is_not_a_json_object_is_a_miss(
        self, real_cache: RedisProductCache, redis_client: redis.Redis, raw: str
    ) -> None:
        product_id = random_product_id()
        redis_client.set(f"product:{product_id}", raw, ex=TTL)
        assert real_cache.get(product_id) is None

    def test_an_entry_redis_refuses_to_read_is_a_miss(
        self, real_cache: RedisProductCache, redis_client: redis.Redis
    ) -> None:
        # GIVEN a key of the wrong type where the product's entry belongs (GET says WRONGTYPE)
        product = a_product()
        redis_client.hset(f"product:{product.id}", "stock", "1")
        # WHEN the cache reads it, THEN it is a miss, not an error
        assert real_cache.get(product.id) is None
        # AND the next put replaces it
        real_cache.put(product.id, product.to_dict())
        assert real_cache.get(product.id) == product.to_dict()

    def test_get_product_reads_through_a_failing_entry(
        self, real_cache: RedisProductCache, redis_client: redis.Redis
    ) -> None:
        products = FakeProductRepository()
        product = a_product()
        products.add(product)
        redis_client.hset(f"product:{product.id}", "stock", "1")
        assert catalog.get_product(products, real_cache, product.id) == (product, False)


class TestRedisOutage:
    @pytest.fixture
    def counting(self, closed_port_url: str) -> Iterator[CountingClient]:
        client = connect(closed_port_url, 0.25)
        yield CountingClient(client)
        client.close()

    @pytest.fixture
    def guard(
        self,
        counting: CountingClient,
        fake_time: FakeTime,  # noqa: ARG002 (the breaker reads the patched clock)
    ) -> RedisGuard:
        return RedisGuard(counting, Breaker(5))  # type: ignore[arg-type]

    def test_reads_miss_and_writes_do_not_raise(self, guard: RedisGuard) -> None:
        cache = RedisProductCache(guard, TTL)
        product = a_product()
        assert cache.get(product.id) is None
        cache.put(product.id, product.to_dict())
        cache.invalidate(product.id)
        assert guard.ping() is False

    def test_the_breaker_makes_later_calls_fail_fast(
        self, guard: RedisGuard, counting: CountingClient
    ) -> None:
        cache = RedisProductCache(guard, TTL)
        product = a_product()
        # GIVEN a first read that finds Redis unreachable
        assert cache.get(product.id) is None
        assert guard.breaker.open
        assert sum(counting.calls.values()) == 1
        # WHEN more calls follow while the breaker is open
        cache.put(product.id, product.to_dict())
        cache.invalidate(product.id)
        assert cache.get(product.id) is None
        # THEN none of them reaches the client
        assert sum(counting.calls.values()) == 1

    def test_after_retry_after_one_call_tries_again(
        self, guard: RedisGuard, counting: CountingClient, fake_time: FakeTime
    ) -> None:
        cache = RedisProductCache(guard, TTL)
        assert cache.get("a") is None
        fake_time.now += 5.1
        assert not guard.breaker.open
        assert cache.get("a") is None
        assert counting.calls["get"] == 2
        assert guard.breaker.open  # still out: tripped again

    def test_a_success_closes_the_breaker(
        self, redis_url: str, redis_client: redis.Redis, fake_time: FakeTime
    ) -> None:
        guard = RedisGuard(connect(redis_url, 1.0), Breaker(5))
        cache = RedisProductCache(guard, TTL)
        guard.breaker.trip()
        product = a_product()
        cache.put(product.id, product.to_dict())  # skipped: the breaker is open
        assert redis_client.exists(f"product:{product.id}") == 0
        fake_time.now += 6
        cache.put(product.id, product.to_dict())
        assert not guard.breaker.open
        assert cache.get(product.id) == product.to_dict()
        guard.client.close()


class TestGetProductWhenRedisIsDown:
    def test_the_product_comes_from_dynamodb(
        self,
        make_table: Callable[[], str],
        dynamodb_endpoint: str,
        closed_port_url: str,
    ) -> None:
        # GIVEN a product in DynamoDB and a Redis that refuses connections
        products = DynamoProductRepository(bind(make_table(), REGION, dynamodb_endpoint))
        product = a_product()
        products.add(product)
        client = connect(closed_port_url, 0.25)
        counting = CountingClient(client)
        cache = RedisProductCache(RedisGuard(counting, Breaker(5)), TTL)  # type: ignore[arg-type]
        # WHEN it is read twice
        results = [catalog.get_product(products, cache, product.id) for _ in range(2)]
        # THEN both reads are served from DynamoDB and only the first tried Redis
        assert results == [(product, False), (product, False)]
        assert sum(counting.calls.values()) == 1
        client.close()


class TestReadAheadByTheRateLimiter:
    """The rate limiter's script reads the cache entries a request names; the cache answers
    from that read once, within the request's context only."""

    @pytest.fixture
    def parts(
        self, redis_url: str
    ) -> Iterator[tuple[RedisRateLimiter, RedisProductCache, CountingClient]]:
        client = connect(redis_url, 1.0)
        counting = CountingClient(client)
        guard = RedisGuard(client, Breaker(5))
        limiter = RedisRateLimiter(guard)
        cache = RedisProductCache(RedisGuard(counting, Breaker(5)), TTL)  # type: ignore[arg-type]
        yield limiter, cache, counting
        client.close()

    def test_an_entry_read_ahead_is_served_without_a_get_once(self, parts: Any) -> None:
        limiter, cache, counting = parts
        product = a_product()
        cache.put(product.id, product.to_dict())

        def request() -> tuple[Any, Any]:
            assert limiter.hit(random_id("reads:"), POLICY, [product.id]).allowed
            return cache.get(product.id), cache.get(product.id)

        first, second = contextvars.copy_context().run(request)
        assert first == second == product.to_dict()
        assert counting.calls["get"] == 1  # the second read asked Redis again

    def test_nothing_read_ahead_outlives_its_context(self, parts: Any) -> None:
        limiter, cache, counting = parts
        product = a_product()
        cache.put(product.id, product.to_dict())
        contextvars.copy_context().run(limiter.hit, random_id("reads:"), POLICY, [product.id])
        assert cache.get(product.id) == product.to_dict()
        assert counting.calls["get"] == 1

    def test_absent_tombstoned_and_foreign_entries_read_ahead_are_misses(
        self, parts: Any, redis_client: redis.Redis
    ) -> None:
        limiter, cache, _ = parts
        absent, tombstoned, foreign = (random_product_id() for _ in range(3))
        redis_client.set(f"product:{tombstoned}", RedisProductCache.TOMBSTONE, ex=5)
        redis_client.hset(f"product:{foreign}", "stock", "1")

        def request() -> list[Any]:
            limiter.hit(random_id("reads:"), POLICY, [absent, tombstoned, foreign])
            return [cache.get(p) for p in (absent, tombstoned, foreign)]

        assert contextvars.copy_context().run(request) == [None, None, None]
        # the entry of the wrong type was left to the cache's own read, which cleared it
        assert redis_client.exists(f"product:{foreign}") == 0

    def test_a_refused_request_reads_nothing_ahead(self, parts: Any) -> None:
        limiter, cache, counting = parts
        product, key = a_product(), random_id("reads:")
        cache.put(product.id, product.to_dict())
        one = RatePolicy(limit=1, period_seconds=60)

        def request() -> tuple[bool, Any]:
            limiter.hit(key, one)
            refused = not limiter.hit(key, one, [product.id]).allowed
            return refused, cache.get(product.id)

        assert contextvars.copy_context().run(request) == (True, product.to_dict())
        assert counting.calls["get"] == 1
