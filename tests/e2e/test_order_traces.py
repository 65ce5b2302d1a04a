"""One trace per order: the local platform traces its functions with OpenTelemetry into its own
in-memory store (as `make dev` does), and an order placed over HTTP reads as one trace from
PlaceOrder through ProcessOrder to FulfilOrder, with their DynamoDB, Redis and payment calls.

Every wait below is bounded in time and polls at a fixed interval.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator

import pytest

from bench.common import wait_until
from funcmart.adapters.dynamodb.table import bind
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.traces import SpanRecord, TraceStore
from tests.e2e.test_order_pipeline import Shop
from tests.support.platforms import local_settings


@pytest.fixture(scope="module")
def traced(make_table, dynamodb_endpoint, moto_endpoint, redis_url) -> Iterator[Shop]:
    # the orders' rate limit on (generous), so that PlaceOrder calls Redis
    stack = local_settings(
        "trace",
        make_table(),
        dynamodb_endpoint,
        moto_endpoint,
        redis_url,
        RetryBackoffBaseSeconds="0",
        OrdersRateLimit="1000/60s",
    )
    stack = dataclasses.replace(stack, traces="memory")
    with LocalPlatform(stack, run_schedules=False, embedded=False) as platform:
        yield Shop(platform)


def store_of(shop: Shop) -> TraceStore:
    store = shop.platform.traces
    assert store is not None
    return store


def by_function(spans: list[SpanRecord], suffix: str) -> list[SpanRecord]:
    return [s for s in spans if s.function.endswith(suffix)]


def test_an_order_is_one_trace_from_the_request_to_fulfilment(traced: Shop) -> None:
    # GIVEN a caller that sends its own W3C trace context with the order
    pid = traced.product(stock=3)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    answer = traced.http.post(
        "/orders",
        headers={
            **traced.auth("tracy"),
            "Idempotency-Key": secrets.token_hex(8),
            "traceparent": traceparent,
        },
        json={"lines": [{"productId": pid, "quantity": 1}], "paymentToken": "tok_ok"},
    )
    assert answer.status_code == 202, answer.text
    oid = str(answer.json()["id"])
    # WHEN the pipeline pays and fulfils it
    wait_until(lambda: traced.status("tracy", oid) == "FULFILLED", 30, "order fulfilled")
    store = store_of(traced)

    def fulfilment_recorded() -> bool:
        spans = by_function(store.spans(trace_id), "FulfilOrder")
        return any(s.attributes.get("rpc.service") == "DynamoDB" for s in spans)

    wait_until(fulfilment_recorded, 10, "FulfilOrder's spans recorded")
    # THEN the caller's trace holds all three functions, each with its own calls
    spans = store.spans(trace_id)
    assert {s.trace_id for s in spans} == {trace_id}
    place = by_function(spans, "PlaceOrder")
    process = by_function(spans, "ProcessOrder")
    fulfil = by_function(spans, "FulfilOrder")
    request = next(s for s in place if s.kind == "server")
    assert request.name == "POST /orders"
    assert request.parent_id == traceparent.split("-")[2]
    assert request.attributes["http.response.status_code"] == 202
    assert request.attributes["http.route"] == "/orders"
    assert request.attributes["funcmart.caller"] == "customer"
    assert request.attributes["funcmart.route_class"] == "orders"
    for function in (place, process, fulfil):
        assert any(s.attributes.get("rpc.service") == "DynamoDB" for s in function)
    assert any(s.name == "redis rate limit" for s in place)
    assert any(s.name == "publish OrderPlaced" for s in place)
    assert any(s.name == "payment charge" and s.status != "error" for s in process)
    assert any(s.name == "publish OrderPaid" for s in process)
    # each consumer's record span continues the trace from the message that reached it
    by_id = {s.span_id: s for s in spans}
    for consumer, published in ((process, "publish OrderPlaced"), (fulfil, "publish OrderPaid")):
        record = next(s for s in consumer if s.name.startswith("process "))
        assert by_id[record.parent_id or ""].name == published
    # the order keeps the request's context, for the reconciler to continue its trace
    stored = bind(
        traced.platform.settings.names["Table"],
        "us-east-1",
        traced.platform.settings.dynamodb_endpoint,
    )
    assert str(stored.Order.get(f"ORDER#{oid}", "ORDER").trace_context).split("-")[1] == trace_id
    # the payment and table calls sit under the record span that made them
    charge = next(s for s in process if s.name == "payment charge")
    assert charge.parent_id in {s.span_id for s in process}


def test_an_orders_trace_is_found_by_its_id_and_shown_as_a_waterfall(traced: Shop) -> None:
    pid = traced.product(stock=3)
    oid = traced.order("wanda", pid)
    wait_until(lambda: traced.status("wanda", oid) == "FULFILLED", 30, "order fulfilled")
    found = traced.http.get(f"/traces?order={oid}")
    assert found.status_code == 303
    location = found.headers["Location"]
    trace_id = location.rsplit("/", 1)[-1]
    store = store_of(traced)
    wait_until(
        lambda: by_function(store.spans(trace_id), "FulfilOrder") != [],
        10,
        "FulfilOrder's spans recorded",
    )
    page = traced.http.get(location)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    for name in ("POST /orders", "payment charge", "DynamoDB.TransactWriteItems"):
        assert name in page.text
    as_json = traced.http.get(f"{location}.json").json()
    assert {s["traceId"] for s in as_json["spans"]} == {trace_id}
    index = traced.http.get("/traces")
    assert index.status_code == 200
    assert trace_id in index.text


def test_the_trace_pages_answer_unknown_traces_and_orders_with_problems(traced: Shop) -> None:
    missing = traced.http.get(f"/traces/{'0' * 32}")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    assert traced.http.get("/traces/not-a-trace").status_code == 404
    assert traced.http.get("/traces?order=no-such-order").status_code == 404
    refused = traced.http.post("/traces")
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD"
