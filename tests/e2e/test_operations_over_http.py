"""Operations end to end: a stuck order found and cancelled over HTTP, and `make redrive`
moving dead letters back, on the local platform (DynamoDB Local, moto's SQS, Redis).

Every wait is bounded in time and polls at a fixed interval.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import httpx

from bench.common import wait_until
from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support.platforms import local_settings
from tools import redrive


def token(platform: LocalPlatform, sub: str, admin: bool) -> str:
    config = default_jwt_config(load(platform.settings.template_path), platform.settings)
    return mint_token(platform.settings.jwt_secret, config, sub, ["admin"] if admin else [])


def bearer(platform: LocalPlatform, sub: str, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(platform, sub, admin)}"}


def test_a_dead_lettered_order_is_found_and_cancelled_with_its_stock_back(
    make_table: Any, dynamodb_endpoint: str, moto_endpoint: str, redis_url: str
) -> None:
    settings = local_settings(
        "ops",
        make_table(),
        dynamodb_endpoint,
        moto_endpoint,
        redis_url,
        RetryBackoffBaseSeconds="0",
        MaxReceiveCount="2",
        # retries take no time here: a dead letter may come as soon as the order is placed
        DeadLetterMinAgeSeconds="0",
        OrdersRateLimit="off",
    )
    with (
        LocalPlatform(settings) as platform,
        httpx.Client(base_url=platform.url, timeout=30) as http,
    ):
        admin = bearer(platform, "ops-admin", admin=True)
        made = http.post(
            "/products",
            headers=admin,
            json={
                "name": "Stuck item",
                "category": "ops",
                "price": {"amount": 900, "currency": "EUR"},
                "stock": 5,
            },
        )
        pid = made.json()["id"]
        # GIVEN an order whose payment fails on every delivery
        placed = http.post(
            "/orders",
            headers={**bearer(platform, "erin"), "Idempotency-Key": uuid.uuid4().hex},
            json={"lines": [{"productId": pid, "quantity": 2}], "paymentToken": "tok_transient"},
        )
        oid = placed.json()["id"]

        def waiting() -> bool:
            listed = http.get("/operations/orders", headers=admin).json()["items"]
            return any(o["id"] == oid for o in listed)

        # WHEN its message is dead-lettered, the operator finds it waiting
        wait_until(waiting, 60, "the order to be dead-lettered and flagged", every=0.25)
        assert http.get("/operations/orders", headers=bearer(platform, "erin")).status_code == 403
        assert http.get(f"/products/{pid}").json()["stock"] == 3
        # AND cancels it with a reason
        cancelled = http.post(
            f"/operations/orders/{oid}/cancel",
            headers=admin,
            json={"reason": "card processor rejects this card type"},
        )
        # THEN it is cancelled, the stock is back and the action is on the order
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()
        assert body["status"] == "CANCELLED"
        assert body["operatorActions"][0]["actor"] == "ops-admin"
        assert http.get(f"/products/{pid}").json()["stock"] == 5
        assert not waiting()
        again = http.post(
            f"/operations/orders/{oid}/retry", headers=admin, json={"reason": "too late"}
        )
        assert again.status_code == 409


def test_make_redrive_moves_every_dead_letter_back_once(
    make_table: Any, dynamodb_endpoint: str, moto_endpoint: str, redis_url: str
) -> None:
    settings = local_settings("redrive", make_table(), dynamodb_endpoint, moto_endpoint, redis_url)
    # no consumers: the dead letters stay where they are until redriven
    with LocalPlatform(settings, poll_queues=False, run_schedules=False) as platform:
        sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
        assert platform.deployment is not None
        urls = {lid: q.url for lid, q in platform.deployment.queues.items()}
        sent = {
            "OrderPlacedDeadLetterQueue": ["p1", "p2", "p3"],
            "OrderPaidDeadLetterQueue": ["q1"],
        }
        for dlq, ids in sent.items():
            for oid in ids:
                body = json.dumps({"type": "OrderPlaced", "orderId": oid})
                sqs.send_message(QueueUrl=urls[dlq], MessageBody=body)
        # WHEN an operator runs `make redrive` against the running API
        code = redrive.main(
            ["--api", platform.url], env={redrive.TOKEN_ENV: token(platform, "op", True)}
        )
        assert code == 0

        def drain(url: str) -> list[str]:
            out: list[str] = []
            for _ in range(10):
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
                if not got:
                    break
                out += [json.loads(m["Body"])["orderId"] for m in got]
                for m in got:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return sorted(out)

        # THEN each message is back in its source queue, once, and the dead letters are gone
        assert drain(urls["OrderPlacedQueue"]) == ["p1", "p2", "p3"]
        assert drain(urls["OrderPaidQueue"]) == ["q1"]
        assert drain(urls["OrderPlacedDeadLetterQueue"]) == []
        assert drain(urls["OrderPaidDeadLetterQueue"]) == []
