"""The Knative adapter over real HTTP: functions-framework servers for CreateProduct,
GetProduct and ProcessOrder, called with HTTP requests and CloudEvents (binary and structured),
their effects read back from DynamoDB Local."""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
import yaml

from funcmart.adapters.event_signing import BadSignature, EventKeys
from funcmart.domain import orders as model
from funcmart.domain.commands import PlaceOrder
from funcmart.domain.orders import RequestedLine
from funcmart.services import orders
from funcmart_hosts.gateway.template import ROOT
from tests.platforms.knative_servers import (
    AUDIENCE,
    EVENT_KEY,
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
KEYS = EventKeys(EVENT_KEY)


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
    # Access lines on, as deployed (LOG_LEVEL=INFO in infra/config.yaml)
    with knative_server("GetProduct", {**env, "LOG_LEVEL": "INFO"}) as server:
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


def test_a_jwt_header_with_cr_lf_gets_a_clean_401(create_product: Server) -> None:
    # GIVEN a token whose header's alg and kid carry CR/LF (and a character outside Latin-1)
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    header = {"alg": "RS256\r\nX-Injected: 1\u2603", "kid": "k\r\nX-Injected: 2"}
    hostile = f"{part(header)}.{part({'sub': 'x'})}.c2ln"
    answer = httpx.post(
        f"{create_product.url}/products",
        json=new_product(),
        headers={"Authorization": f"Bearer {hostile}"},
    )
    # THEN a 401 problem whose WWW-Authenticate is one clean header (no 500, no injection)
    assert answer.status_code == 401, create_product.output()
    assert "x-injected" not in answer.headers
    assert "\n" not in answer.headers["www-authenticate"]


def test_a_method_the_route_does_not_take_is_405_with_allow(create_product: Server) -> None:
    answer = httpx.request("PURGE", f"{create_product.url}/products")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("size", [b"-5", b"zz"])
def test_a_chunk_size_that_is_not_hex_is_a_400_problem(create_product: Server, size: bytes) -> None:
    # GIVEN a chunked body whose chunk size the HTTP parser refuses while the host reads it
    port = int(create_product.url.rsplit(":", 1)[1])
    head = b"POST /products HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + size + b"\r\nabc")
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        # THEN a 400 problem, not the 500 page of an exception inside the app
        assert response.status == 400, create_product.output()
        assert response.getheader("Content-Type") == "application/problem+json"


@pytest.mark.parametrize(
    "request_head",
    [
        # two Content-Length headers that disagree
        b"POST /products HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n",
        # a transfer coding the server does not know
        b"POST /products HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked2\r\n\r\n",
        # a method that is not an upper-case token
        b"p\xc3\xb6st /products HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_what_the_server_refuses_before_the_app_is_a_problem_too(
    create_product: Server, request_head: bytes
) -> None:
    # GIVEN a request the HTTP parser refuses itself, before the function's app could see it
    port = int(create_product.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request_head)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        body = response.read()
    # THEN a 4xx or 5xx answered as problem+json, not the server's own text page
    assert 400 <= response.status < 600, create_product.output()
    assert response.getheader("Content-Type") == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == response.status
    assert "<html>" not in body.decode()


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
    assert httpx.get(f"{get_product.url}/metrics").status_code == 404  # not on the routed port
    text = httpx.get(get_product.metrics_url)
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain; version=")
    lines = text.text.splitlines()
    assert "# TYPE funcmart_cache_hits_total counter" in lines
    values = {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in lines if line[:1] != "#")
    }
    # (Exported at 0 from the start: the values, not the names, show the two reads.)
    assert values["funcmart_cache_misses_total"] >= 1
    assert values["funcmart_cache_hits_total"] >= 1
    route = 'route="GET /products/{productId}"'
    assert any(
        line.startswith(f'funcmart_http_requests_total{{code="200",{route}}}') for line in lines
    )
    assert any(
        line.startswith("funcmart_http_latency_seconds_bucket{")
        and route in line
        and 'le="+Inf"' in line
        for line in lines
    )
    assert any(line.startswith("funcmart_http_latency_seconds_count{") for line in lines)


# ---------------------------------------------------------------------------- consumers


def place(deps, token_: str = "tok_ok") -> str:  # type: ignore[no-untyped-def]
    pid = add_product(deps, stock=5, amount=1200)
    placed = orders.place_order(
        deps.order_ports,
        customer(),
        PlaceOrder(
            idempotency_key=random_id("key-"),
            lines=[RequestedLine(pid, 2)],
            payment_token=token_,
            request_body={"lines": [{"productId": pid, "quantity": 2}], "paymentToken": token_},
            correlation_id=random_id("corr-"),
        ),
    )
    return str(placed.body["id"])


def order_placed_data(order_id: str, correlation: str = "corr-1") -> dict[str, str]:
    return {"type": "OrderPlaced", "orderId": order_id, "correlationId": correlation}


def binary(
    url: str,
    data: dict[str, str],
    ce_type: str = "dev.funcmart.order.placed",
    keys: EventKeys | None = KEYS,
) -> httpx.Response:
    """A binary-mode CloudEvent, signed with `keys` as our publishers sign (None: unsigned)."""
    attributes = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "type": ce_type,
        "source": "funcmart/place-order",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "correlationid": data.get("correlationId", ""),
    }
    if keys is not None:
        attributes.update(keys.sign(attributes, data))
    headers = {f"ce-{k}": v for k, v in attributes.items()}
    headers["content-type"] = "application/json"
    return httpx.post(url, content=json.dumps(data), headers=headers)


def structured(url: str, data: dict[str, str]) -> httpx.Response:
    envelope = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "type": "dev.funcmart.order.placed",
        "source": "funcmart/reconcile-orders",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    envelope.update(KEYS.sign(envelope, data))
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
    # signed with the function's key, for the next consumer to verify
    attributes = {k[3:]: v for k, v in sent[0].headers.items() if k.startswith("ce-")}
    assert KEYS.verify(attributes, sent[0].body)
    with pytest.raises(BadSignature):
        EventKeys("another-key-of-at-least-32-bytes-long").verify(attributes, sent[0].body)


@pytest.mark.parametrize(
    "keys",
    [None, EventKeys("a-forger-s-own-key-of-at-least-32-bytes")],
    ids=["unsigned", "forged"],
)
def test_an_event_we_did_not_sign_is_a_403_problem_and_changes_nothing(
    process_order: Server,
    broker: Sink,
    keys: EventKeys | None,
    deps,  # type: ignore[no-untyped-def]
) -> None:
    # GIVEN a PENDING order
    oid = place(deps)
    # WHEN a pod POSTs an OrderPlaced for it that our publishers did not sign
    answer = binary(process_order.url, order_placed_data(oid), keys=keys)
    # THEN it is refused with a 4xx the broker does not retry, as problem+json
    assert answer.status_code == 403, process_order.output()
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 403
    # AND nothing happened: no charge, no event, the refusal counted
    assert deps.orders.get(oid).status == model.PENDING
    assert not [r for r in broker.received if r.body.get("orderId") == oid]
    scrape = httpx.get(process_order.metrics_url).text.splitlines()
    (count,) = [line for line in scrape if line.startswith("funcmart_event_signature_failures")]
    assert float(count.rsplit(" ", 1)[1]) >= 1


def test_a_structured_cloudevent_is_processed_the_same_way(
    process_order: Server,
    deps,  # type: ignore[no-untyped-def]
) -> None:
    oid = place(deps, "tok_decline")
    answer = structured(process_order.url, order_placed_data(oid))
    assert answer.status_code == 200, process_order.output()
    assert deps.orders.get(oid).status == model.FAILED
    assert deps.products.get(deps.orders.get(oid).lines[0].product_id).stock == 5


def test_a_transient_failure_answers_5xx_so_the_broker_retries(
    process_order: Server,
    deps,  # type: ignore[no-untyped-def]
) -> None:
    oid = place(deps, "tok_transient")
    answer = binary(process_order.url, order_placed_data(oid))
    assert answer.status_code >= 500
    assert deps.orders.get(oid).status == model.PENDING


def test_an_unknown_order_answers_422_so_the_broker_dead_letters_it_at_once(
    process_order: Server,
) -> None:
    # 422 is a 4xx Knative Eventing's data-plane contract does not retry
    answer = binary(process_order.url, order_placed_data("no-such-order"))
    assert answer.status_code == 422


def test_an_unreadable_event_answers_422_too(process_order: Server) -> None:
    answer = binary(process_order.url, {"hello": "world"})
    assert answer.status_code == 422


def test_the_consumer_serves_metrics_as_well(process_order: Server) -> None:
    text = httpx.get(process_order.metrics_url).text
    assert "funcmart_payment_latency_seconds_bucket" in text


def test_secret_is_long_enough_for_hs256() -> None:
    assert len(SECRET.encode()) >= 32


def test_a_real_scrape_passes_promtool_check_metrics(get_product: Server, deps) -> None:  # type: ignore[no-untyped-def]
    httpx.get(f"{get_product.url}/products/{add_product(deps)}")
    scrape = httpx.get(get_product.metrics_url).text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs Debian's prometheus"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not checked.stdout.strip(), checked.stdout
    assert "funcmart_orders_dead_lettered_total 0.0" in scrape.splitlines()


def test_anonymous_rate_limits_count_the_address_the_outermost_trusted_proxy_saw(
    env: dict[str, str],
) -> None:
    """As deployed (infra/config.yaml): the activator and queue-proxy on every request, the
    Gateway on those that carry its token. Whatever a caller writes into X-Forwarded-For, on
    any path in, it neither escapes its own bucket nor spends someone else's."""
    config = yaml.safe_load((ROOT / "infra" / "config.yaml").read_text())["data"]
    edge = uuid.uuid4().hex * 2
    limited = {
        **env,
        "RATE_LIMIT": "2/60s",
        "TRUSTED_PROXY_HOPS": config["TRUSTED_PROXY_HOPS"],
        "TRUSTED_EDGE_HOPS": config["TRUSTED_EDGE_HOPS"],
        "FUNCMART_EDGE_TOKEN": edge,
    }
    n = uuid.uuid4().int % 250 + 1
    alice, bob, balancer, pod = f"203.0.113.{n}", f"198.51.100.{n}", f"10.9.{n}.17", f"10.8.{n}.7"
    kourier, activator = f"10.7.{n}.2", "10.0.1.9"
    path = f"{kourier}, {activator}"  # what the activator and queue-proxy append
    with knative_server("GetProduct", limited) as server:

        def get(forwarded: str, token: str | None = edge) -> int:
            headers = {"X-Forwarded-For": forwarded}
            if token:
                headers["X-Funcmart-Edge"] = token
            url = f"{server.url}/products/p-{uuid.uuid4().hex[:8]}"
            return httpx.get(url, headers=headers).status_code

        # Through the Gateway: the address the Gateway received from.
        assert [get(f"{alice}, {path}"), get(f"{alice}, {path}")] == [404, 404]
        assert get(f"{alice}, {path}") == 429, server.output()
        assert get(f"1.2.3.{n}, {alice}, {path}") == 429  # a new left-most entry: her bucket
        assert get(f"{alice}, {bob}, {path}") == 404  # Bob, who wrote Alice's address
        # Behind a load balancer that rewrites sources: one bucket, whatever each one writes.
        behind = [get(f"192.0.2.{i}, 10.0.0.{i}, {balancer}, {path}") for i in range(3)]
        assert behind == [404, 404, 429]
        # A pod that calls Kourier itself (no token, or a guessed one): Kourier's bucket.
        direct = [get(f"192.0.2.{i}, {path}", token) for i, token in enumerate((None, "x" * 40))]
        assert direct == [404, 404]
        assert get(f"203.0.113.{(n + 1) % 250 + 1}, {path}", None) == 429
        # A pod that calls the activator itself: its own address.
        assert [get(f"192.0.2.{i}, {pod}, {activator}", None) for i in range(3)] == [404, 404, 429]
        # An entry that is not an address where the caller's would be read: 400, not a bucket
        refused = httpx.get(
            f"{server.url}/products/p-1", headers={"X-Forwarded-For": f"{'x' * 1000}, {activator}"}
        )
        assert refused.status_code == 400
        assert refused.headers["content-type"] == "application/problem+json"


def test_each_pod_exports_its_start_up_time_and_logs_one_line_per_request(
    get_product: Server, deps
) -> None:  # type: ignore[no-untyped-def]
    pid = add_product(deps)
    answer = httpx.get(f"{get_product.url}/products/{pid}")
    # THEN the scrape says how long the pod took from its process's start to ready
    lines = httpx.get(get_product.metrics_url).text.splitlines()
    (startup,) = [line for line in lines if line.startswith("funcmart_host_startup_seconds ")]
    assert 0 < float(startup.split()[1]) < 300
    # AND the request's access line is in the pod's log, as JSON naming it
    rid = answer.headers["apigw-requestid"]
    deadline = time.monotonic() + 10
    while rid not in get_product.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(x for x in get_product.log.read_text().splitlines() if rid in x and "route" in x)
    access = json.loads(line)
    assert access["route"] == "GET /products/{productId}"
    assert (access["status"], access["function"], access["method"]) == (200, "GetProduct", "GET")
