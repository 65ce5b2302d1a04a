"""Redis goes away mid-run and comes back: the catalog keeps answering from DynamoDB, carts
answer 503 with Retry-After, orders are unaffected, rate limits fail open; then carts work
again. The Redis here is a redis-server this test starts and stops by its own pid; the
machine's shared Redis is never touched."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local import services
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support.platforms import local_settings

pytestmark = [pytest.mark.dynamodb, pytest.mark.redis]


@pytest.fixture(scope="module")
def own_redis() -> Iterator[services.Process]:
    proc = services.start_redis_server()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def platform(make_table, dynamodb_endpoint, moto_endpoint, own_redis) -> Iterator[LocalPlatform]:
    settings = local_settings(
        "outage", make_table(), dynamodb_endpoint, moto_endpoint, own_redis.url
    )
    with LocalPlatform(settings) as running:
        yield running


def wait_until(check, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


def test_redis_outage_and_recovery(platform, own_redis):
    config = default_jwt_config(load(platform.settings.template_path), platform.settings)
    secret = platform.settings.jwt_secret
    admin = {"Authorization": f"Bearer {mint_token(secret, config, 'ops', ['admin'])}"}
    me = {"Authorization": f"Bearer {mint_token(secret, config, f'c-{uuid.uuid4().hex[:6]}')}"}
    with httpx.Client(base_url=platform.url, timeout=10) as api:
        # GIVEN a product, a cart holding it, and Redis up
        made = api.post(
            "/products",
            json={
                "name": "Lamp",
                "category": "home",
                "price": {"amount": 2500, "currency": "EUR"},
                "stock": 9,
            },
            headers=admin,
        )
        assert made.status_code == 201, made.text
        pid = made.json()["id"]
        assert api.put(f"/cart/items/{pid}", json={"quantity": 1}, headers=me).status_code == 200
        assert api.get(f"/products/{pid}").status_code == 200

        # WHEN the Redis server is stopped (by its own pid)
        own_redis.stop()
        assert own_redis.proc.poll() is not None

        # THEN catalog reads are still served, from DynamoDB
        got = api.get(f"/products/{pid}")
        assert (got.status_code, got.headers["x-cache"]) == (200, "MISS")
        assert api.get("/products", params={"category": "home"}).status_code == 200
        # AND cart calls are 503 problem+json with Retry-After
        for method, path, body in [
            ("GET", "/cart", None),
            ("PUT", f"/cart/items/{pid}", {"quantity": 2}),
            ("DELETE", f"/cart/items/{pid}", None),
            ("DELETE", "/cart", None),
        ]:
            resp = api.request(method, path, json=body, headers=me)
            assert resp.status_code == 503, (method, path, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            assert int(resp.headers["retry-after"]) >= 1
        # AND ordering lines is unaffected (no rate-limit headers: the limiter failed open)
        order = api.post(
            "/orders",
            json={"lines": [{"productId": pid, "quantity": 1}], "paymentToken": "tok_ok"},
            headers={**me, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert order.status_code == 202, order.text
        assert "ratelimit-limit" not in order.headers
        assert api.get(f"/orders/{order.json()['id']}", headers=me).status_code == 200
        # AND health says degraded, not down
        health = api.get("/health")
        assert health.status_code == 200
        assert health.json()["checks"]["redis"] == "degraded"

        # WHEN Redis comes back on the same port
        restarted = services.start_redis_server(
            port=int(own_redis.url.rsplit(":", 1)[1].split("/")[0])
        )
        own_redis.proc, own_redis.cleanup = restarted.proc, own_redis.cleanup + restarted.cleanup
        # THEN, once the breaker's pause is over, the cart works again (it was in Redis
        # memory, so it starts empty) and rate limits are counted again
        assert wait_until(lambda: api.get("/cart", headers=me).status_code == 200)
        again = api.put(f"/cart/items/{pid}", json={"quantity": 3}, headers=me)
        assert again.status_code == 200
        assert again.json()["itemCount"] == 3
        assert "ratelimit-remaining" in again.headers
        # AND every request let through unlimited was counted (the process's /metrics)
        metrics = api.get("/metrics").text
        assert "funcmart_rate_limiter_fail_open_total" in metrics
