"""Many function instances at once, as the platform scales them: four gateway processes on
one DynamoDB Local table take 200 orders for 50 items, and 50 retries of one request.

Each process is what one Lambda instance is: its own interpreter, its own clients. Only the
table and its conditions stand between them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from funcmart.adapters.dynamodb.table import bind
from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.resources import default_jwt_config
from funcmart_hosts.local.services import free_port

INSTANCES = 4


@pytest.fixture(scope="module")
def instances(
    make_table, dynamodb_endpoint, moto_endpoint, redis_url, tmp_path_factory
) -> Iterator[tuple[list[str], str]]:
    table = make_table()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_SQS": moto_endpoint,
        "REDIS_URL": redis_url,
        "FUNCMART_STACK_NAME": f"multi-{uuid.uuid4().hex[:8]}",
    }
    logs = tmp_path_factory.mktemp("instances")
    procs, urls = [], []
    try:
        for i in range(INSTANCES):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "funcmart_hosts.local",
                        "dev",
                        "--port",
                        str(port),
                        "--no-consumers",
                        "--resource-name",
                        f"Table={table}",
                        # 50 retries of one customer's request: more than its rate limit
                        "--parameter",
                        "OrdersRateLimit=off",
                    ],
                    env=env,
                    stdout=(Path(logs) / f"{i}.log").open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 90
        for proc, url in zip(procs, urls, strict=True):
            while True:
                assert proc.poll() is None, f"instance at {url} exited"
                assert time.monotonic() < deadline, f"instance at {url} did not start"
                try:
                    httpx.get(f"{url}/products", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        yield urls, table
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def token(sub: str, admin: bool = False) -> str:
    settings = LocalSettings.load({})
    config = default_jwt_config(load(settings.template_path), settings)
    return mint_token(settings.jwt_secret, config, sub, ["admin"] if admin else [])


def test_200_concurrent_orders_for_50_in_stock_across_instances(instances, dynamodb_endpoint):
    urls, table = instances
    # GIVEN a product with 50 in stock
    created = httpx.post(
        f"{urls[0]}/products",
        headers={"Authorization": f"Bearer {token('admin', admin=True)}"},
        json={
            "name": "Limited print",
            "category": "art",
            "stock": 50,
            "price": {"amount": 4000, "currency": "EUR"},
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    tokens = [token(f"buyer-{i}") for i in range(200)]

    def order(i: int) -> httpx.Response:
        return httpx.post(
            f"{urls[i % INSTANCES]}/orders",
            headers={"Authorization": f"Bearer {tokens[i]}", "Idempotency-Key": f"k-{i}"},
            json={"lines": [{"productId": pid, "quantity": 1}], "paymentToken": "tok_ok"},
            timeout=60,
        )

    # WHEN 200 customers order one each, at once, through four instances
    with ThreadPoolExecutor(max_workers=40) as pool:
        answers = list(pool.map(order, range(200)))

    # THEN exactly 50 are accepted and 150 told 409; stock ends at 0, never below
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {202: 50, 409: 150}, statuses
    assert all(
        a.headers["content-type"] == "application/problem+json"
        and a.json()["title"] == "Insufficient stock"
        for a in answers
        if a.status_code == 409
    )
    tables = bind(table, "us-east-1", dynamodb_endpoint)
    assert tables.Product.get(f"PRODUCT#{pid}", "PRODUCT", consistent_read=True).stock == 0
    accepted = [a.json()["id"] for a in answers if a.status_code == 202]
    stored = tables.Order.batch_get([(f"ORDER#{o}", "ORDER") for o in accepted])
    assert sorted(o.pk.removeprefix("ORDER#") for o in stored) == sorted(accepted)


def test_50_concurrent_retries_of_one_request_make_one_order(instances, dynamodb_endpoint):
    urls, table = instances
    admin = token("admin", admin=True)
    created = httpx.post(
        f"{urls[1]}/products",
        headers={"Authorization": f"Bearer {admin}"},
        json={
            "name": "Poster",
            "category": "art",
            "stock": 100,
            "price": {"amount": 1500, "currency": "EUR"},
        },
        timeout=10,
    )
    pid = created.json()["id"]
    me = token(f"retrier-{uuid.uuid4().hex[:6]}")
    key = str(uuid.uuid4())

    def order(i: int) -> httpx.Response:
        return httpx.post(
            f"{urls[i % INSTANCES]}/orders",
            headers={"Authorization": f"Bearer {me}", "Idempotency-Key": key},
            json={"lines": [{"productId": pid, "quantity": 3}], "paymentToken": "tok_ok"},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(order, range(50)))

    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1, "every retry gets the same answer"
    listed = httpx.get(
        f"{urls[2]}/orders", headers={"Authorization": f"Bearer {me}"}, timeout=10
    ).json()
    assert len(listed["items"]) == 1
    tables = bind(table, "us-east-1", dynamodb_endpoint)
    assert tables.Product.get(f"PRODUCT#{pid}", "PRODUCT", consistent_read=True).stock == 97
