"""Concurrent conditional transactions give the same answers on every store the local platform
runs on: DynamoDB Local, and the embedded moto server `make dev` starts when no endpoint is
given. Many buyers for scarce stock never get more than the stock; concurrent retries of one
Idempotency-Key make exactly one order."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config

BUYERS = 40
STOCK = 13
RETRIES = 8  # within the orders rate limit of one customer (10 a minute)


@pytest.fixture(scope="module", params=["dynamodb-local", "embedded"])
def platform(request, moto_endpoint, redis_url) -> Iterator[LocalPlatform]:  # type: ignore[no-untyped-def]
    """The platform on DynamoDB Local, or on the embedded store exactly as `make dev` starts
    it (no DynamoDB or SQS endpoint given: an in-process moto server)."""
    embedded = request.param == "embedded"
    settings = LocalSettings(
        port=0,
        stack_name=f"stores-{uuid.uuid4().hex[:8]}",
        dynamodb_endpoint=None if embedded else request.getfixturevalue("dynamodb_endpoint"),
        sqs_endpoint=None if embedded else moto_endpoint,
        redis_url=redis_url,
    )
    with LocalPlatform(settings) as running:
        assert running.backends is not None
        if embedded:
            assert "embedded moto server" in running.backends.notes["DynamoDB"]
        yield running


@pytest.fixture(scope="module")
def auth(platform: LocalPlatform) -> Callable[..., dict[str, str]]:
    config = default_jwt_config(load(platform.settings.template_path), platform.settings)

    def headers(role: str, sub: str | None = None) -> dict[str, str]:
        groups = ["admin"] if role == "admin" else []
        token = mint_token(platform.settings.jwt_secret, config, sub or f"e2e-{role}", groups)
        return {"Authorization": f"Bearer {token}"}

    return headers


def _product(platform: LocalPlatform, auth: Callable[..., dict[str, str]], stock: int) -> str:
    with httpx.Client(base_url=platform.url, timeout=30) as api:
        created = api.post(
            "/products",
            headers=auth("admin"),
            json={
                "name": "Scarce print",
                "category": "concurrency",
                "price": {"amount": 700, "currency": "EUR"},
                "stock": stock,
            },
        )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _all_at_once(
    count: int, call: Callable[[httpx.Client], httpx.Response], platform: Any
) -> list[httpx.Response]:
    start = threading.Barrier(count)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=platform.url, timeout=60) as client:
            start.wait(timeout=30)
            return call(client)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_many_buyers_for_scarce_stock_get_at_most_the_stock(platform, auth):
    # GIVEN a product with 13 in stock
    product_id = _product(platform, auth, STOCK)

    # WHEN 40 customers order one unit each at the same moment
    def buy(client: httpx.Client) -> httpx.Response:
        return client.post(
            "/orders",
            headers={
                **auth("customer", f"buyer-{uuid.uuid4().hex[:8]}"),
                "Idempotency-Key": uuid.uuid4().hex,
            },
            json={"lines": [{"productId": product_id, "quantity": 1}], "paymentToken": "tok_ok"},
        )

    answers = _all_at_once(BUYERS, buy, platform)

    # THEN every answer is an order taken or refused for stock, never an error
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {202, 409}, [a.text for a in answers if a.status_code not in (202, 409)]
    # AND exactly the stock was sold, no unit more, and none is left
    assert statuses.count(202) == STOCK
    with httpx.Client(base_url=platform.url, timeout=30) as api:
        product = api.get(f"/products/{product_id}", headers=auth("admin")).json()
    assert product["stock"] == 0


def test_concurrent_retries_of_one_idempotency_key_make_one_order(platform, auth):
    # GIVEN a product in stock and one customer's order request with one Idempotency-Key
    product_id = _product(platform, auth, 50)
    customer = f"retrier-{uuid.uuid4().hex[:8]}"
    headers = {**auth("customer", customer), "Idempotency-Key": uuid.uuid4().hex}
    body = {"lines": [{"productId": product_id, "quantity": 2}], "paymentToken": "tok_ok"}

    # WHEN the same request is sent eight times at once
    answers = _all_at_once(
        RETRIES, lambda client: client.post("/orders", headers=headers, json=body), platform
    )

    # THEN every answer that took the order names the same one, and none is an error
    assert all(a.status_code in (202, 409) for a in answers), [a.text for a in answers]
    taken = {a.json()["id"] for a in answers if a.status_code == 202}
    assert len(taken) == 1
    # AND the customer has exactly one order, and only its two units left the stock
    with httpx.Client(base_url=platform.url, timeout=30) as api:
        orders = api.get("/orders", headers=auth("customer", customer)).json()
        product = api.get(f"/products/{product_id}", headers=auth("admin")).json()
    assert [o["id"] for o in orders["items"]] == list(taken)
    assert product["stock"] == 48
