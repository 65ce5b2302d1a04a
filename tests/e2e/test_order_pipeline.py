"""Orders end to end: HTTP through the local gateway, real queues (moto's SQS), the
consumers polling them, DynamoDB Local and the real Redis.

Every wait below is bounded in time and polls at a fixed interval.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from bench.common import wait_until
from funcmart.adapters.dynamodb.table import bind
from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support.platforms import local_settings

FINAL = {"FULFILLED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


def settings_for(prefix: str, table: str, dynamodb: str, sqs: str, redis: str) -> LocalSettings:
    # failed records come back at once, so retries and dead-lettering take seconds (and a
    # dead letter is believed however soon it comes); one customer places more orders than
    # the default rate limit allows
    return local_settings(
        prefix,
        table,
        dynamodb,
        sqs,
        redis,
        RetryBackoffBaseSeconds="0",
        DeadLetterMinAgeSeconds="0",
        OrdersRateLimit="off",
    )


class Shop:
    """A client of one running platform, with tokens minted as `make token` does."""

    def __init__(self, platform: LocalPlatform) -> None:
        self.platform = platform
        self.http = httpx.Client(base_url=platform.url, timeout=30)
        self._jwt = default_jwt_config(load(platform.settings.template_path), platform.settings)

    def auth(self, sub: str, admin: bool = False) -> dict[str, str]:
        groups = ["admin"] if admin else []
        token = mint_token(self.platform.settings.jwt_secret, self._jwt, sub, groups)
        return {"Authorization": f"Bearer {token}"}

    def product(self, stock: int, amount: int = 500) -> str:
        answer = self.http.post(
            "/products",
            headers=self.auth("e2e-admin", admin=True),
            json={
                "name": f"Item {uuid.uuid4().hex[:6]}",
                "category": "e2e",
                "price": {"amount": amount, "currency": "EUR"},
                "stock": stock,
            },
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def order(self, who: str, product_id: str, token: str = "tok_ok", quantity: int = 1) -> str:
        answer = self.http.post(
            "/orders",
            headers={**self.auth(who), "Idempotency-Key": uuid.uuid4().hex},
            json={
                "lines": [{"productId": product_id, "quantity": quantity}],
                "paymentToken": token,
            },
        )
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def status(self, who: str, order_id: str) -> str:
        answer = self.http.get(f"/orders/{order_id}", headers=self.auth(who))
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    def stock(self, product_id: str) -> int:
        return int(self.http.get(f"/products/{product_id}").json()["stock"])


@pytest.fixture(scope="module")
def stack(make_table, dynamodb_endpoint, moto_endpoint, redis_url) -> LocalSettings:
    return settings_for("pipe", make_table(), dynamodb_endpoint, moto_endpoint, redis_url)


@pytest.fixture(scope="module")
def shop(stack: LocalSettings) -> Iterator[Shop]:
    """The whole backend: gateway, queue pollers (no timers: the reconciler is tested
    on its own)."""
    with LocalPlatform(stack, run_schedules=False, embedded=False) as platform:
        yield Shop(platform)


def test_an_order_placed_over_http_reaches_fulfilled_with_no_further_action(shop: Shop):
    pid = shop.product(stock=5)
    oid = shop.order("alice", pid)
    wait_until(lambda: shop.status("alice", oid) == "FULFILLED", 30, "order fulfilled")
    assert shop.stock(pid) == 4


def test_a_declined_payment_fails_the_order_and_restores_stock_exactly(shop: Shop):
    pid = shop.product(stock=5)
    oid = shop.order("bob", pid, token="tok_decline", quantity=3)
    assert shop.stock(pid) == 2
    wait_until(lambda: shop.status("bob", oid) == "FAILED", 30, "order failed")
    assert shop.stock(pid) == 5


def test_a_flaky_payment_is_retried_and_charged_once(shop: Shop, stack: LocalSettings):
    pid = shop.product(stock=5)
    oid = shop.order("carol", pid, token="tok_flaky")
    wait_until(lambda: shop.status("carol", oid) == "FULFILLED", 30, "order fulfilled")
    tables = bind(stack.names["Table"], stack.region, stack.dynamodb_endpoint)
    assert tables.SimulatedCharge.get(f"PAYSIM#{oid}", "CHARGE").captures == 1


def test_a_batch_of_ten_with_one_poison_record(
    make_table, dynamodb_endpoint, moto_endpoint, redis_url
):
    # GIVEN ten orders waiting in the queue, one of them with a card that always times out
    stack = settings_for(
        "batch",
        make_table(),
        dynamodb_endpoint,
        moto_endpoint,
        redis_url,
    )
    with LocalPlatform(stack, poll_queues=False, run_schedules=False, embedded=False) as front:
        shop = Shop(front)
        pid = shop.product(stock=20)
        good = [shop.order("dave", pid) for _ in range(9)]
        poison = shop.order("dave", pid, token="tok_transient")
        # WHEN the consumers start and take the queue in batches
        with LocalPlatform(stack, serve_http=False, run_schedules=False, embedded=False):
            # THEN the nine are done, and the poison one is retried, dead-lettered and flagged
            wait_until(
                lambda: all(shop.status("dave", o) == "FULFILLED" for o in good),
                60,
                "nine orders fulfilled",
            )
            wait_until(
                lambda: shop.status("dave", poison) == "NEEDS_ATTENTION",
                60,
                "the poison order flagged",
            )
        assert shop.stock(pid) == 10  # the flagged order keeps its reservation for a person


def _consumer(env: dict[str, str], extra: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "funcmart_hosts.local",
            "consume",
            "--no-provision",
            "--no-schedules",
            *extra,
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_consumer_killed_mid_batch_loses_nothing_and_charges_once(
    make_table, dynamodb_endpoint, moto_endpoint, redis_url, tmp_path: Path
):
    orders_total = 300
    stack = settings_for(
        "crash",
        make_table(),
        dynamodb_endpoint,
        moto_endpoint,
        redis_url,
    )
    with LocalPlatform(stack, poll_queues=False, run_schedules=False, embedded=False) as front:
        shop = Shop(front)
        names = front.deployment.queues  # type: ignore[union-attr]
        # In-flight messages of a killed consumer come back after the visibility timeout:
        # 3 s here instead of the template's 180, so that the test takes seconds.
        sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
        for lid in ("OrderPlacedQueue", "OrderPaidQueue"):
            sqs.set_queue_attributes(QueueUrl=names[lid].url, Attributes={"VisibilityTimeout": "3"})
        # GIVEN 300 orders placed over HTTP; every 50th pays slowly, so batches are in flight
        pid = shop.product(stock=orders_total)
        ids = [
            shop.order(f"cust-{i % 7}", pid, token="tok_slow" if i % 50 == 0 else "tok_ok")
            for i in range(orders_total)
        ]
        tables = bind(stack.names["Table"], stack.region, stack.dynamodb_endpoint)

        def settled() -> list[str]:
            found = [
                item.status
                for item in tables.Order.batch_get(
                    [(f"ORDER#{o}", "ORDER") for o in ids], consistent_read=True
                )
            ]
            assert len(found) == orders_total
            return found

        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
            "AWS_ENDPOINT_URL_SQS": moto_endpoint,
            "REDIS_URL": redis_url,
            "FUNCMART_STACK_NAME": stack.stack_name,
            "PAYMENT_SLOW_SECONDS": "3",
            "FUNCMART_POLLERS": "4",  # several batches in flight when the kill comes
        }
        table = ["--resource-name", f"Table={stack.names['Table']}"]
        log = tmp_path / "consumer.log"
        # WHEN a consumer works through them and is killed (SIGKILL) at the worst moment:
        # a slow order's charge is captured, the answer not yet back, the order still PENDING
        slow = ids[::50]  # the orders whose gateway answers slowly
        caught: list[str] = []

        def charged_but_not_recorded() -> bool:
            for oid in slow[1:]:
                charged = tables.SimulatedCharge.count(f"PAYSIM#{oid}") > 0
                if charged and tables.Order.get(f"ORDER#{oid}", "ORDER").status == "PENDING":
                    caught.append(oid)
                    return True
            return False

        first = _consumer(env, table, log)
        try:
            wait_until(
                charged_but_not_recorded, 150, "a slow order charged, not yet recorded", 0.05
            )
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
        done_at_kill = sum(s in FINAL or s == "PAID" for s in settled())
        assert 0 < done_at_kill < orders_total
        # AND a new consumer is started
        second = _consumer(env, table, log)
        try:
            wait_until(
                lambda: all(s == "FULFILLED" for s in settled()),
                180,
                "every order fulfilled after the restart",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
        # THEN every order is fulfilled and the gateway took money exactly once for each
        captures = {
            o: tables.SimulatedCharge.get(f"PAYSIM#{o}", "CHARGE", consistent_read=True).captures
            for o in ids
        }
        assert set(captures.values()) == {1}
        assert shop.stock(pid) == 0
    print(f"orders settled before the kill: {done_at_kill} of {orders_total}")
