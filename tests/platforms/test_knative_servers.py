"""The Knative adapter over real HTTP: functions-framework servers for CreateProduct,
GetProduct and ProcessOrder, called with HTTP requests and CloudEvents (binary and structured),
their effects read back from DynamoDB Local."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest

from funcmart.domain import orders as model
from funcmart.domain.orders import RequestedLine
from funcmart.services import orders
from tests.platforms.knative_servers import (
    AUDIENCE,
    ISSUER,
    SECRET,
    Server,
    Sink,
    cloudevents_sink,
    knative_server,
    token,
)
from tests.support.builders import add_product, customer, dynamo_container, random_id

ADMIN = token("admin-1", ("admin",))


@pytest.fixture(scope="module")
def table(make_table: Callable[[], str]) -> str:
    return make_table()


@pytest.fixture(scope="module")
def env(table: str, dynamodb_endpoint: str, redis_url: str) -> dict[str, str]:
    return {
        "TABLE_NAME": table,
        "REDIS_URL": redis_url,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
    }


@pytest.fixture(scope="module")
def deps(dynamodb_endpoint: str, table: str):  # type: ignore[no-untyped-def]
    return dynamo_container(dynamodb_endpoint, table)


@pytest.fixture(scope="module")
def create_product(env: dict[str, str]) -> Iterator[Server]:
    with knative_server("CreateProduct", env) as server:
        yield server


@pytest.fixture(scope="module")
def get_product(env: dict[str, str]) -> Iterator[Server]:
    with knative_server("GetProduct", env) as server:
        yield server


@pytest.fixture(scope="module")
def broker() -> Iterator[Sink]:
    with cloudevents_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
def process_order(env: dict[str, str], broker: Sink) -> Iterator[Server]:
    publishing = {**env, "PUBLISHER": "cloudevents", "BROKER_URL": broker.url}
    with knative_server("ProcessOrder", {**publishing, "PAYMENT_SLOW_SECONDS": "0"}) as server:
        yield server


def new_product(name: str | None = None) -> dict[str, object]:
    return {
        "name": name or random_id("Lamp "),
        "category": "lighting",
        "price": {"amount": 2599, "currency": "EUR"},
        "stock": 7,
    }


# ------------------------------------------------------------------------- HTTP functions


def test_create_product_over_http_stores_it_in_dynamodb(create_product: Server, deps) -> None:  # type: ignore[no-untyped-def]
    # WHEN an admin posts a product with a bearer token
    answer = httpx.post(
        f"{create_product.url}/products",
        json=new_product("Desk lamp"),
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    # THEN it is created, and DynamoDB holds it
    assert answer.status_code == 201, create_product.output()
    body = answer.json()
    assert answer.headers["location"] == f"/products/{body['id']}"
    stored = deps.products.get(body["id"])
    assert stored is not None
    assert stored.name == "Desk lamp"
    assert stored.stock == 7


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-a-jwt"}, 401),
        ({"Authorization": "Bearer " + token("a", ("admin",), exp=int(time.time()) - 60)}, 401),
        ({"Authorization": "Bearer " + token("a", ("admin",), aud="someone-else")}, 401),
        ({"Authorization": "Bearer " + token("a", ("admin",), iss="https://evil/")}, 401),
    ],
    ids=["no token", "not a JWT", "expired", "wrong audience", "wrong issuer"],
)
def test_the_edge_turns_away_bad_tokens_like_api_gateway(
    create_product: Server, headers: dict[str, str], status: int
) -> None:
    answer = httpx.post(f"{create_product.url}/products", json=new_product(), headers=headers)
    # THEN the same answer as the local gateway's: problem+json with WWW-Authenticate
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["title"] == "Authentication required"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_an_unsigned_token_is_never_accepted(create_product: Server) -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "groups": ["admin"]}
    claims["exp"] = int(time.time()) + 600
    unsigned = jwt.encode(claims, key="", algorithm="none")
    answer = httpx.post(
        f"{create_product.url}/products",
        json=new_product(),
        headers={"Authorization": f"Bearer {unsigned}"},
    )
    assert answer.status_code == 401
    assert "none" in answer.headers["www-authenticate"]


def test_claims_reach_the_function_as_api_gateway_puts_them(create_product: Server) -> None:
    # GIVEN a customer (no admin group) with a valid token: the function itself answers 403,
    # which it can only do after reading the flattened groups claim
    customer_token = token("cust-1", ("customers", "newsletter"))
    answer = httpx.post(
        f"{create_product.url}/products",
        json=new_product(),
        headers={"Authorization": f"Bearer {customer_token}"},
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_path_the_function_does_not_serve_is_404(create_product: Server) -> None:
    answer = httpx.get(f"{create_product.url}/nowhere")
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no route for GET /nowhere"


def test_get_product_is_public_and_goes_through_the_cache(
    get_product: Server,
    deps,  # type: ignore[no-untyped-def]
) -> None:
    pid = add_product(deps, stock=3)
    first = httpx.get(f"{get_product.url}/products/{pid}")
    second = httpx.get(f"{get_product.url}/products/{pid}")
    assert first.status_code == 200, get_product.output()
    assert first.json()["id"] == pid
    assert first.json()["stock"] == 3
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")


def test_metrics_are_served_in_prometheus_text(get_product: Server, deps) -> None:  # type: ignore[no-untyped-def]
    pid = add_product(deps)
    httpx.get(f"{get_product.url}/products/{pid}")
    httpx.get(f"{get_product.url}/products/{pid}")
    text = httpx.get(f"{get_product.url}/metrics")
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = text.text.splitlines()
    assert "# TYPE funcmart_cache_hits_total counter" in lines
    assert any(line.startswith("funcmart_cache_misses_total ") for line in lines)
    route = 'route="GET /products/{productId}"'
    assert any(
        line.startswith(f'funcmart_http_requests_total{{code="200",{route}}}') for line in lines
    )
    assert any(
        line.startswith(f'funcmart_http_latency_milliseconds_bucket{{{route},le="+Inf"}}')
        for line in lines
    )
    assert any(line.startswith("funcmart_http_latency_milliseconds_count{") for line in lines)


# ---------------------------------------------------------------------------- consumers


def place(deps, token_: str = "tok_ok") -> str:  # type: ignore[no-untyped-def]
    pid = add_product(deps, stock=5, amount=1200)
    placed = orders.place_order(
        deps.order_ports,
        customer(),
        random_id("key-"),
        [RequestedLine(pid, 2)],
        token_,
        {"lines": [{"productId": pid, "quantity": 2}], "paymentToken": token_},
        random_id("corr-"),
    )
    return str(placed.body["id"])


def order_placed_data(order_id: str, correlation: str = "corr-1") -> dict[str, str]:
    return {"type": "OrderPlaced", "orderId": order_id, "correlationId": correlation}


def binary(
    url: str, data: dict[str, str], ce_type: str = "dev.funcmart.order.placed"
) -> httpx.Response:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": uuid.uuid4().hex,
        "ce-type": ce_type,
        "ce-source": "funcmart/place-order",
        "ce-correlationid": data.get("correlationId", ""),
        "content-type": "application/json",
    }
    return httpx.post(url, content=json.dumps(data), headers=headers)


def structured(url: str, data: dict[str, str]) -> httpx.Response:
    envelope = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "type": "dev.funcmart.order.placed",
        "source": "funcmart/reconcile-orders",
        "datacontenttype": "application/json",
        "data": data,
    }
    return httpx.post(
        url,
        content=json.dumps(envelope),
        headers={"content-type": "application/cloudevents+json"},
    )


def test_a_binary_cloudevent_pays_the_order_and_publishes_order_paid(
    process_order: Server,
    broker: Sink,
    deps,  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a PENDING order
    oid = place(deps)
    # WHEN the broker delivers its OrderPlaced as a binary-mode CloudEvent
    answer = binary(process_order.url, order_placed_data(oid, "corr-bin"))
    # THEN the order is PAID in DynamoDB and OrderPaid went to the broker as a CloudEvent
    assert answer.status_code == 200, process_order.output()
    assert deps.orders.get(oid).status == model.PAID
    sent = [r for r in broker.received if r.body.get("orderId") == oid]
    assert len(sent) == 1
    assert sent[0].headers["ce-type"] == "dev.funcmart.order.paid"
    assert sent[0].headers["ce-specversion"] == "1.0"
    assert sent[0].headers["ce-source"] == "funcmart"
    assert sent[0].headers["ce-correlationid"] == "corr-bin"
    assert sent[0].body == {"type": "OrderPaid", "orderId": oid, "correlationId": "corr-bin"}


def test_a_structured_cloudevent_is_processed_the_same_way(
    process_order: Server,
    deps,  # type: ignore[no-untyped-def]
) -> None:
    oid = place(deps, "tok_decline")
    answer = structured(process_order.url, order_placed_data(oid))
    assert answer.status_code == 200, process_order.output()
    assert deps.orders.get(oid).status == model.FAILED
    assert deps.products.get(deps.orders.get(oid).lines[0].product_id).stock == 5


def test_a_failed_record_answers_non_2xx_so_the_broker_retries(process_order: Server) -> None:
    answer = binary(process_order.url, order_placed_data("no-such-order"))
    assert answer.status_code >= 500


def test_an_unreadable_event_fails_too(process_order: Server) -> None:
    answer = binary(process_order.url, {"hello": "world"})
    assert answer.status_code >= 500


def test_the_consumer_serves_metrics_as_well(process_order: Server) -> None:
    text = httpx.get(f"{process_order.url}/metrics").text
    assert "funcmart_payment_latency_milliseconds_bucket" in text


def test_secret_is_long_enough_for_hs256() -> None:
    assert len(SECRET.encode()) >= 32
