"""CartStore contract: the same cases against the in-memory fake and Redis."""

from __future__ import annotations

import pytest

from funcmart.adapters.redis_store import Breaker, RedisCartStore, RedisGuard, connect
from funcmart.domain.errors import DependencyUnavailable
from tests.fakes import FakeCartStore
from tests.support.builders import random_id

TTL = 600


@pytest.fixture(params=["fake", "redis"])
def store(request):
    if request.param == "fake":
        return FakeCartStore()
    redis_url = request.getfixturevalue("redis_url")
    request.getfixturevalue("redis_client")  # a flushed database
    return RedisCartStore(RedisGuard(connect(redis_url, 0.5), Breaker(1)), TTL)


@pytest.fixture
def me() -> str:
    return random_id("cust-")


class TestCartStoreContract:
    def test_a_new_customer_has_an_empty_cart(self, store, me):
        assert store.get(me).empty

    def test_set_then_get(self, store, me):
        assert store.set_quantity(me, "p1", 2, 50)
        assert store.set_quantity(me, "p2", 1, 50)
        assert store.get(me).quantities == {"p1": 2, "p2": 1}

    def test_set_replaces_the_quantity(self, store, me):
        store.set_quantity(me, "p1", 2, 50)
        store.set_quantity(me, "p1", 7, 50)
        assert store.get(me).quantities == {"p1": 7}

    def test_zero_removes_the_line(self, store, me):
        store.set_quantity(me, "p1", 2, 50)
        store.set_quantity(me, "p1", 0, 50)
        assert store.get(me).empty

    def test_a_full_cart_refuses_a_new_product_but_not_a_known_one(self, store, me):
        store.set_quantity(me, "p1", 1, 2)
        store.set_quantity(me, "p2", 1, 2)
        assert not store.set_quantity(me, "p3", 1, 2)
        assert store.set_quantity(me, "p1", 5, 2)
        assert store.get(me).quantities == {"p1": 5, "p2": 1}

    def test_remove_and_clear(self, store, me):
        store.set_quantity(me, "p1", 1, 50)
        store.set_quantity(me, "p2", 1, 50)
        store.remove(me, "p1")
        store.remove(me, "absent")
        assert store.get(me).quantities == {"p2": 1}
        store.clear(me)
        assert store.get(me).empty

    def test_remove_ordered_keeps_lines_changed_since(self, store, me):
        store.set_quantity(me, "p1", 1, 50)
        store.set_quantity(me, "p2", 3, 50)
        store.remove_ordered(me, {"p1": 1, "p2": 2})
        assert store.get(me).quantities == {"p2": 3}

    def test_odd_product_ids_are_kept_apart(self, store, me):
        odd = ["a b", "ä/ö", "'; DROP", "x" * 64, "*", "p1"]
        for pid in odd:
            store.set_quantity(me, pid, 1, 50)
        assert set(store.get(me).quantities) == set(odd)


class TestRedisCart:
    def test_every_write_renews_the_ttl(self, redis_url, redis_client, me):
        store = RedisCartStore(RedisGuard(connect(redis_url, 0.5), Breaker(1)), TTL)
        store.set_quantity(me, "p1", 1, 50)
        redis_client.expire(f"cart:{me}", 5)
        store.set_quantity(me, "p2", 1, 50)
        assert redis_client.ttl(f"cart:{me}") > TTL - 5
        redis_client.expire(f"cart:{me}", 5)
        store.remove(me, "p2")
        assert redis_client.ttl(f"cart:{me}") > TTL - 5

    def test_the_cart_is_a_hash_under_cart_sub(self, redis_url, redis_client, me):
        store = RedisCartStore(RedisGuard(connect(redis_url, 0.5), Breaker(1)), TTL)
        store.set_quantity(me, "p1", 4, 50)
        assert redis_client.hgetall(f"cart:{me}") == {"p1": "4"}

    def test_a_corrupt_quantity_is_ignored(self, redis_url, redis_client, me):
        store = RedisCartStore(RedisGuard(connect(redis_url, 0.5), Breaker(1)), TTL)
        redis_client.hset(f"cart:{me}", mapping={"p1": "2", "p2": "lots", "p3": "-1"})
        assert store.get(me).quantities == {"p1": 2}

    def test_an_unreachable_redis_is_dependency_unavailable_and_trips_the_breaker(self, me):
        guard = RedisGuard(connect("redis://127.0.0.1:1/0", 0.2), Breaker(30))
        store = RedisCartStore(guard, TTL)
        with pytest.raises(DependencyUnavailable) as err:
            store.get(me)
        assert err.value.retry_after == 30
        assert guard.breaker.open
        with pytest.raises(DependencyUnavailable):
            store.set_quantity(me, "p1", 1, 50)
