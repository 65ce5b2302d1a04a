"""The Knative-shaped end-to-end run: every function of `kubectl kustomize infra` started as
its container starts (the image's command, one process per replica, the environment the
manifests give it), events delivered as the rendered Triggers say by an in-test broker,
requests routed as the rendered HTTPRoutes say, against DynamoDB Local and the real Redis.
The same behaviour checks as the local platform's; and the run fails when a Trigger filter or
a variable in the manifests is wrong.

Every wait is bounded in time and polls at a fixed interval; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.common import wait_until
from funcmart.adapters.event_signing import EventKeys
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.auth import JwtConfig, mint_token
from tests.platforms.knative_cluster import (
    Cluster,
    by_kind,
    cluster,
    container_env,
    image_app,
    knative_services,
    start_replica,
    stop,
    wait_started,
)
from tests.platforms.kustomize import render
from tools import manifests

RENDERED = render()
CONFIG = next(
    d for d in by_kind(RENDERED, "ConfigMap") if d["metadata"]["name"] == manifests.CONFIG
)
JWT_SECRET = f"e2e-{uuid.uuid4().hex}-of-at-least-32-bytes"
EVENT_KEY = uuid.uuid4().hex + uuid.uuid4().hex  # as `openssl rand -hex 32` makes one
JWT = JwtConfig(CONFIG["data"]["FUNCMART_JWT_ISSUER"], (CONFIG["data"]["FUNCMART_JWT_AUDIENCE"],))
FINAL = {"FULFILLED", "FAILED", "CANCELLED", "NEEDS_ATTENTION"}


@pytest.fixture(scope="module")
def knative_table(dynamodb_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The table the ConfigMap names (TABLE_NAME), created as the template defines it."""
    name = CONFIG["data"]["TABLE_NAME"]
    if name in dynamodb_client.list_tables()["TableNames"]:
        dynamodb_client.delete_table(TableName=name)
        dynamodb_client.get_waiter("table_not_exists").wait(TableName=name)
    dynamodb_client.create_table(**template.load().create_table_kwargs(name))
    dynamodb_client.get_waiter("table_exists").wait(TableName=name)
    yield name
    dynamodb_client.delete_table(TableName=name)


def secrets(redis_url: str) -> dict[str, dict[str, str]]:
    """The Secret an operator creates out of band (docs/deploy.md)."""
    return {
        manifests.SECRET: {
            "FUNCMART_JWT_SECRET": JWT_SECRET,
            "REDIS_URL": redis_url,
            "FUNCMART_EVENT_KEY": EVENT_KEY,
        },
        manifests.EDGE_SECRET["name"]: {manifests.EDGE_SECRET["key"]: "edge-" + "t" * 40},
    }


def cluster_env(dynamodb_endpoint: str) -> dict[str, str]:
    """What the cluster gives a pod beside its manifest: DynamoDB (IRSA on EKS)."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        # The ConfigMap chooses Stripe; this cluster takes payments with the simulator (its
        # tokens drive the paths below), as a staging overlay of the ConfigMap would.
        "PAYMENT_PROVIDER": "simulator",
        "FUNCMART_ALLOW_SIMULATOR": "yes-orders-are-not-paid-for",
        # DynamoDB Local keeps one database per access key: the test's own.
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
    }


@pytest.fixture(scope="module")
def shop(knative_table: str, dynamodb_endpoint: str, redis_url: str) -> Iterator[Cluster]:
    assert knative_table == CONFIG["data"]["TABLE_NAME"]
    # PlaceOrder scaled out to three pods, as the autoscaler would under a burst.
    with cluster(
        RENDERED, secrets(redis_url), cluster_env(dynamodb_endpoint), {"place-order": 3}
    ) as running:
        yield running


def auth(sub: str, admin: bool = False) -> dict[str, str]:
    token = mint_token(JWT_SECRET, JWT, sub, ["admin"] if admin else [])
    return {"Authorization": f"Bearer {token}"}


def new_product(shop: Cluster, stock: int) -> str:
    answer = shop.request(
        "POST",
        "/products",
        headers=auth("k-admin", admin=True),
        json={
            "name": f"Item {uuid.uuid4().hex[:6]}",
            "category": "knative",
            "price": {"amount": 700, "currency": "EUR"},
            "stock": stock,
        },
    )
    assert answer.status_code == 201, shop.replicas["create-product"][0].output()
    return str(answer.json()["id"])


def place(shop: Cluster, who: str, pid: str, token: str = "tok_ok", qty: int = 1) -> httpx.Response:
    return shop.request(
        "POST",
        "/orders",
        headers={**auth(who), "Idempotency-Key": uuid.uuid4().hex},
        json={"lines": [{"productId": pid, "quantity": qty}], "paymentToken": token},
    )


def status(shop: Cluster, who: str, oid: str) -> str:
    answer = shop.request("GET", f"/orders/{oid}", headers=auth(who))
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def stock(shop: Cluster, pid: str) -> int:
    answer = shop.request("GET", f"/products/{pid}")
    assert answer.status_code == 200, answer.text
    return int(answer.json()["stock"])


def test_an_order_reaches_fulfilled_through_broker_and_triggers(shop: Cluster) -> None:
    pid = new_product(shop, stock=5)
    placed = place(shop, "k-alice", pid)
    assert placed.status_code == 202, placed.text
    oid = placed.json()["id"]
    try:
        wait_until(lambda: status(shop, "k-alice", oid) == "FULFILLED", 60, "order fulfilled")
    except TimeoutError:
        raise AssertionError(shop.output()) from None
    assert stock(shop, pid) == 4
    # The broker records a delivery once the subscriber has answered.
    wait_until(shop.broker.idle, 30, "the broker has nothing in flight")
    delivered = {d.subscriber for d in shop.broker.deliveries if d.status < 300}
    assert {"process-order", "fulfil-order"} <= delivered


def test_a_declined_payment_fails_the_order_and_restores_stock(shop: Cluster) -> None:
    pid = new_product(shop, stock=5)
    oid = place(shop, "k-bob", pid, token="tok_decline", qty=3).json()["id"]
    # (The broker delivers at once, so the reservation may already be released here.)
    wait_until(lambda: status(shop, "k-bob", oid) == "FAILED", 60, "order failed")
    assert stock(shop, pid) == 5


def test_a_poison_event_is_retried_then_dead_lettered_to_handle_dead_letters(
    shop: Cluster,
) -> None:
    pid = new_product(shop, stock=5)
    oid = place(shop, "k-carol", pid, token="tok_transient").json()["id"]
    wait_until(lambda: status(shop, "k-carol", oid) == "NEEDS_ATTENTION", 90, "order flagged")
    wait_until(shop.broker.idle, 30, "the broker has nothing in flight")
    (trigger,) = [
        t
        for t in by_kind(RENDERED, "Trigger")
        if t["spec"]["subscriber"]["ref"]["name"] == "process-order"
    ]
    attempts = [
        d for d in shop.broker.deliveries if d.subscriber == "process-order" and d.status >= 500
    ]
    assert len({d.event_id for d in attempts}) >= 1
    per_event: dict[str, int] = {}
    for d in attempts:
        per_event[d.event_id] = per_event.get(d.event_id, 0) + 1
    assert 1 + trigger["spec"]["delivery"]["retry"] in per_event.values()
    assert any(
        d.subscriber == "handle-dead-letters" and d.status < 300 for d in shop.broker.deliveries
    )


def test_an_event_no_retry_can_fix_goes_to_the_dead_letter_sink_at_once(shop: Cluster) -> None:
    # GIVEN an OrderPlaced event for an order that does not exist
    event_id = f"poison-{uuid.uuid4().hex[:8]}"
    order_id = f"o-never-placed-{uuid.uuid4().hex[:8]}"
    (trigger,) = [
        t
        for t in by_kind(RENDERED, "Trigger")
        if t["spec"]["subscriber"]["ref"]["name"] == "process-order"
    ]
    attributes = {
        **trigger["spec"]["filter"]["attributes"],
        "specversion": "1.0",
        "id": event_id,
        "source": "funcmart/place-order",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    data = {"type": "OrderPlaced", "orderId": order_id, "correlationId": "c-poison"}
    attributes.update(EventKeys(EVENT_KEY).sign(attributes, data))  # as a publisher signs
    headers = {f"ce-{k}": v for k, v in attributes.items()}
    headers["content-type"] = "application/json"
    # WHEN the broker delivers it
    shop.broker.accept(headers, json.dumps(data).encode())
    wait_until(shop.broker.idle, 30, "the broker has nothing in flight")
    # THEN ProcessOrder refuses it once, with a status the broker does not retry, and
    # HandleDeadLetters takes it from the dead-letter sink
    tries = [d for d in shop.broker.deliveries if d.event_id == event_id]
    assert [d.status for d in tries if d.subscriber == "process-order"] == [422]
    assert trigger["spec"]["delivery"]["retry"] > 0  # the budget it did not spend
    assert any(d.subscriber == "handle-dead-letters" and d.status < 300 for d in tries)


def test_events_travel_signed_and_the_dead_letter_sink_verifies_them_too(shop: Cluster) -> None:
    # GIVEN an order whose payment fails until it is dead-lettered (see above)
    pid = new_product(shop, stock=5)
    oid = place(shop, "k-gina", pid, token="tok_transient").json()["id"]
    wait_until(lambda: status(shop, "k-gina", oid) == "NEEDS_ATTENTION", 90, "order flagged")
    wait_until(shop.broker.idle, 30, "the broker has nothing in flight")
    # THEN no delivery anywhere was refused for its signature: the publishers' signatures
    # survived the broker and the dead-letter sink's extra attributes
    assert not [d for d in shop.broker.deliveries if d.status in (401, 403)]
    assert any(
        d.subscriber == "handle-dead-letters" and d.status < 300 for d in shop.broker.deliveries
    )


def forged_order_placed(
    order_id: str, forgery: str = "unsigned", **extra: str
) -> tuple[dict[str, str], bytes]:
    """An OrderPlaced a pod in the cluster makes up: right type and shape, but without our
    key: unsigned, with a made-up signature under our key's (public) id, or signed with a
    key of its own."""
    attributes = {
        "specversion": "1.0",
        "id": f"forged-{uuid.uuid4().hex[:8]}",
        "type": "dev.funcmart.order.placed",
        "source": "funcmart/place-order",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **extra,
    }
    data = {"type": "OrderPlaced", "orderId": order_id, "correlationId": "c-forged"}
    if forgery == "made-up signature":
        ours = EventKeys(EVENT_KEY).sign(attributes, data)["funcmartkeyid"]
        attributes.update(funcmartkeyid=ours, funcmartsig="00" * 32)
    elif forgery == "another key":
        attributes.update(EventKeys("k" * 64).sign(attributes, data))
    headers = {f"ce-{k}": v for k, v in attributes.items()}
    headers["content-type"] = "application/json"
    return headers, json.dumps(data).encode()


@pytest.mark.parametrize("forgery", ["unsigned", "made-up signature", "another key"])
def test_a_forged_event_posted_to_handle_dead_letters_is_refused_and_flags_nothing(
    shop: Cluster, forgery: str
) -> None:
    # GIVEN a PENDING order (its real events are held back: nothing consumes them)
    original, shop.broker.triggers = shop.broker.triggers, []
    try:
        pid = new_product(shop, stock=3)
        oid = place(shop, "k-hal", pid).json()["id"]
        assert status(shop, "k-hal", oid) == "PENDING"
        # WHEN a pod POSTs a dead letter for it straight to HandleDeadLetters' Service
        headers, body = forged_order_placed(
            oid,
            forgery,
            knativeerrordest="http://process-order.funcmart.svc.cluster.local",
            knativeerrorcode="500",
        )
        answer = httpx.post(shop.url("handle-dead-letters"), headers=headers, content=body)
        # THEN it is refused as problem+json, with a status the broker would not retry
        assert answer.status_code == 403, shop.output()
        assert answer.headers["content-type"] == "application/problem+json"
        # AND the order is not flagged
        assert status(shop, "k-hal", oid) == "PENDING"
    finally:
        shop.broker.triggers = original


def test_a_captured_signed_event_replayed_to_handle_dead_letters_flags_no_fresh_order(
    shop: Cluster,
) -> None:
    # GIVEN a PENDING order, and its real OrderPlaced as PlaceOrder signed and sent it, captured
    # by a pod (nothing consumes it: the order stays PENDING)
    original, shop.broker.triggers = shop.broker.triggers, []
    try:
        pid = new_product(shop, stock=3)
        oid = place(shop, "k-jo", pid).json()["id"]
        (captured,) = [
            (headers, body)
            for headers, body in list(shop.broker.received)
            if json.loads(body).get("orderId") == oid
        ]
    finally:
        shop.broker.triggers = original
    sent, body = captured
    headers = {k: v for k, v in sent.items() if k.startswith("ce-") or k == "content-type"}
    # WHEN the pod posts it, well inside its signature's window, straight to HandleDeadLetters'
    # Service as the dead letter of a delivery that failed
    headers.update(
        {
            "ce-knativeerrordest": "http://process-order.funcmart.svc.cluster.local",
            "ce-knativeerrorcode": "500",
        }
    )
    answer = httpx.post(shop.url("handle-dead-letters"), headers=headers, content=body)
    # THEN the signature holds and the event is taken (2xx: nothing for a broker to retry) ...
    assert 200 <= answer.status_code < 300, shop.output()
    # ... AND the order is left alone: it entered PENDING sooner than any Trigger's retries
    # could dead-letter its event
    assert status(shop, "k-jo", oid) == "PENDING"


def test_a_forged_event_injected_into_the_broker_is_refused_by_consumer_and_sink(
    shop: Cluster,
) -> None:
    # GIVEN an order held back as above, and a forged OrderPlaced for it put into the broker
    original = shop.broker.triggers
    shop.broker.triggers = []
    try:
        pid = new_product(shop, stock=3)
        oid = place(shop, "k-ivy", pid).json()["id"]
    finally:
        shop.broker.triggers = original
    headers, body = forged_order_placed(oid)
    shop.broker.accept(headers, body)
    wait_until(shop.broker.idle, 30, "the broker has nothing in flight")
    # THEN ProcessOrder refuses it (not retried), the dead-letter sink refuses it as well,
    # and the order is neither paid nor flagged
    tries = [d for d in shop.broker.deliveries if d.event_id == headers["ce-id"]]
    assert [(d.subscriber, d.status) for d in tries] == [
        ("process-order", 403),
        ("handle-dead-letters", 403),
    ]
    assert status(shop, "k-ivy", oid) == "PENDING"


def test_fifty_concurrent_orders_for_twenty_units_oversell_nothing(shop: Cluster) -> None:
    pid = new_product(shop, stock=20)
    with ThreadPoolExecutor(max_workers=25) as pool:
        answers = list(pool.map(lambda i: place(shop, f"k-buyer-{i}", pid), range(50)))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 20, codes
    assert set(codes) <= {202, 409}, codes
    accepted = [
        (f"k-buyer-{i}", a.json()["id"]) for i, a in enumerate(answers) if a.status_code == 202
    ]
    # Every order gets there, none left for a reconciler (none ticks here): a publish the
    # broker did not take at once is sent again.
    wait_until(
        lambda: all(status(shop, who, oid) in FINAL for who, oid in accepted), 120, "orders done"
    )
    assert stock(shop, pid) == 0
    assert all(status(shop, who, oid) == "FULFILLED" for who, oid in accepted)


def test_the_reconciler_takes_its_ping_source_event(shop: Cluster) -> None:
    (ping,) = by_kind(RENDERED, "PingSource")
    assert shop.ping(ping["metadata"]["name"]) < 300


# ----------------------------------------------- the run follows the manifests, not its own idea


def test_a_wrong_trigger_filter_leaves_the_order_pending(shop: Cluster) -> None:
    """With the process-order Trigger filtering on a type nobody publishes, the order stays
    PENDING: the behaviour checks above would fail."""
    wrong = copy.deepcopy(shop.broker.triggers)
    for t in wrong:
        if t["spec"]["subscriber"]["ref"]["name"] == "process-order":
            t["spec"]["filter"]["attributes"]["type"] = "dev.funcmart.order.plaecd"
    original, shop.broker.triggers = shop.broker.triggers, wrong
    try:
        pid = new_product(shop, stock=2)
        oid = place(shop, "k-dan", pid).json()["id"]
        wait_until(shop.broker.idle, 30, "the broker has nothing in flight")
        assert status(shop, "k-dan", oid) == "PENDING"
    finally:
        shop.broker.triggers = original


def test_a_wrong_variable_in_a_manifest_breaks_the_behaviour(
    knative_table: str, dynamodb_endpoint: str, redis_url: str, tmp_path: Path
) -> None:
    """GetOrder started from a manifest whose FUNCMART_ROUTES names another path answers 404
    where the route sends an order read: the run uses the manifests' environment."""
    assert knative_table == CONFIG["data"]["TABLE_NAME"]
    ksvc: dict[str, Any] = copy.deepcopy(knative_services(RENDERED)["get-order"])
    (container,) = ksvc["spec"]["template"]["spec"]["containers"]
    for var in container["env"]:
        if var["name"] == "FUNCMART_ROUTES":
            var["value"] = json.dumps([{"route": "GET /order/{orderId}", "public": False}])
    env = container_env(ksvc, RENDERED, secrets(redis_url), None)
    replica = start_replica("get-order", env, cluster_env(dynamodb_endpoint), image_app(tmp_path))
    try:
        wait_started([replica], 60)
        answer = httpx.get(f"{replica.url}/orders/o-1", headers=auth("k-erin"), timeout=30)
        assert answer.status_code == 404
    finally:
        stop(replica)
