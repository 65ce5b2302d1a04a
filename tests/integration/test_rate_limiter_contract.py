"""RateLimiter contract: the Lua GCRA in Redis decides like the reference in the domain."""

from __future__ import annotations

import threading

import pytest

from funcmart.adapters.redis_store import Breaker, RedisGuard, RedisRateLimiter, connect
from funcmart.domain.errors import DependencyUnavailable
from funcmart.domain.ratelimit import RatePolicy
from tests.fakes import FakeRateLimiter
from tests.support.builders import random_id

POLICY = RatePolicy(limit=3, period_seconds=60)


@pytest.fixture(params=["fake", "redis"])
def limiter(request):
    if request.param == "fake":
        return FakeRateLimiter()
    redis_url = request.getfixturevalue("redis_url")
    request.getfixturevalue("redis_client")
    return RedisRateLimiter(RedisGuard(connect(redis_url, 0.5), Breaker(1)))


class TestRateLimiterContract:
    def test_the_whole_budget_then_a_refusal(self, limiter):
        key = random_id("writes:sub:")
        decisions = [limiter.hit(key, POLICY) for _ in range(4)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]
        assert decisions[-1].retry_after_seconds == 20
        assert decisions[-1].reset_seconds == 60
        assert decisions[0].reset_seconds == 20

    def test_keys_are_independent(self, limiter):
        a, b = random_id("k:"), random_id("k:")
        for _ in range(3):
            limiter.hit(a, POLICY)
        assert limiter.hit(b, POLICY).allowed


class TestRedisRateLimiter:
    @pytest.mark.usefixtures("redis_client")
    def test_concurrent_hits_never_exceed_the_limit(self, redis_url):
        limiter = RedisRateLimiter(RedisGuard(connect(redis_url, 2), Breaker(1)))
        policy, key, allowed = RatePolicy(20, 60), random_id("k:"), []

        def worker() -> None:
            for _ in range(10):
                allowed.append(limiter.hit(key, policy).allowed)

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(allowed) == 60
        assert sum(allowed) == 20

    def test_the_key_expires_when_the_budget_is_full_again(self, redis_url, redis_client):
        limiter = RedisRateLimiter(RedisGuard(connect(redis_url, 0.5), Breaker(1)))
        key = random_id("k:")
        limiter.hit(key, RatePolicy(10, 60))
        assert 0 < redis_client.pttl(f"ratelimit:{key}") <= 6000

    def test_unreachable_redis_is_dependency_unavailable(self):
        limiter = RedisRateLimiter(RedisGuard(connect("redis://127.0.0.1:1/0", 0.2), Breaker(5)))
        with pytest.raises(DependencyUnavailable):
            limiter.hit("k", POLICY)
