"""One local platform process runs concurrent invocations of one function, as Lambda runs
concurrent instances, and the conditional writes keep the stock right under them."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

BUYERS = 50
STOCK = 20


class InFlight:
    """Counts the invocations running at once through the platform's invoker."""

    def __init__(self, invoke: Any) -> None:
        self._invoke = invoke
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return self._invoke(*args, **kwargs)
        finally:
            with self._lock:
                self.now -= 1


def test_fifty_concurrent_orders_for_twenty_units_oversell_nothing(platform, api, auth):
    # GIVEN a product with 20 in stock, served by one platform process
    created = api.post(
        "/products",
        headers=auth("admin"),
        json={
            "name": "Limited print",
            "category": "concurrency",
            "price": {"amount": 900, "currency": "EUR"},
            "stock": STOCK,
        },
    )
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    in_flight = InFlight(platform.invoker.invoke)
    platform.invoker.invoke = in_flight  # type: ignore[method-assign]
    start = threading.Barrier(BUYERS)

    def buy(n: int) -> int:
        with httpx.Client(base_url=platform.url, timeout=30) as client:
            start.wait(timeout=30)
            answer = client.post(
                "/orders",
                headers={**auth("customer", f"buyer-{n}"), "Idempotency-Key": uuid.uuid4().hex},
                json={
                    "lines": [{"productId": product_id, "quantity": 1}],
                    "paymentToken": "tok_ok",
                },
            )
        assert answer.status_code in (202, 409), answer.text
        return answer.status_code

    # WHEN 50 customers order one unit each at the same moment
    with ThreadPoolExecutor(BUYERS) as pool:
        statuses = list(pool.map(buy, range(BUYERS)))

    # THEN exactly 20 orders were taken, 30 refused, the stock is 0, never below
    assert statuses.count(202) == STOCK
    assert statuses.count(409) == BUYERS - STOCK
    product = api.get(f"/products/{product_id}", headers=auth("admin")).json()
    assert product["stock"] == 0
    # AND the platform really ran invocations side by side (no lock serialised them)
    assert in_flight.most > 1
