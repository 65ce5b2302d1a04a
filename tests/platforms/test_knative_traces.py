"""One trace per order on the Knative-shaped run: every function in its own process under the
image's command, OpenTelemetry on as the ConfigMap would turn it on (`FUNCMART_TRACING=otlp`),
the spans sent as OTLP/HTTP JSON to a collector this test runs on 127.0.0.1, the events through
the broker carrying the CloudEvents `traceparent` extension. A cache hit answered on the event
loop is traced like any request, and a pod stopped by Knative sends the spans it still holds.

Every wait is bounded in time and polls at a fixed interval."""

from __future__ import annotations

import json
import secrets as random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from bench.common import wait_until
from tests.platforms.knative_cluster import (
    Cluster,
    cluster,
    container_env,
    image_app,
    knative_services,
    start_replica,
    stop,
    wait_started,
)
from tests.platforms.test_knative_e2e import (
    CONFIG,
    RENDERED,
    auth,
    cluster_env,
    knative_table,  # noqa: F401 - the fixture
    new_product,
    secrets,
    status,
)


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: every span of every POST to /v1/traces, with its resource's
    `faas.name` (the function that sent it)."""

    spans: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        got = []
        for resource_spans in body["resourceSpans"]:
            resource = {
                a["key"]: a["value"].get("stringValue")
                for a in resource_spans["resource"]["attributes"]
            }
            for scope in resource_spans["scopeSpans"]:
                for span in scope["spans"]:
                    attributes = {a["key"]: a["value"] for a in span.get("attributes", [])}
                    got.append({**span, "function": resource.get("faas.name"), "attrs": attributes})
        with Collector.lock:
            Collector.spans.extend(got)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture(scope="module")
def collector() -> Iterator[str]:
    Collector.spans = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def traced_shop(
    knative_table: str,  # noqa: F811
    dynamodb_endpoint: str,
    redis_url: str,
    collector: str,
) -> Iterator[Cluster]:
    assert knative_table == CONFIG["data"]["TABLE_NAME"]
    env = {
        **cluster_env(dynamodb_endpoint),
        # what an operator's kustomize patch of the ConfigMap sets, with a collector of our own
        "FUNCMART_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms: the batch goes out soon after each request
    }
    with cluster(RENDERED, secrets(redis_url), env) as running:
        yield running


def spans_of(trace_id: str) -> list[dict[str, Any]]:
    with Collector.lock:
        return [s for s in Collector.spans if s["traceId"] == trace_id]


def test_an_order_is_one_trace_across_the_knative_services(traced_shop: Cluster) -> None:
    pid = new_product(traced_shop, stock=3)
    trace_id, caller_span = random.token_hex(16), random.token_hex(8)
    placed = traced_shop.request(
        "POST",
        "/orders",
        headers={
            **auth("k-tracy"),
            "Idempotency-Key": random.token_hex(8),
            "traceparent": f"00-{trace_id}-{caller_span}-01",
        },
        json={"lines": [{"productId": pid, "quantity": 1}], "paymentToken": "tok_ok"},
    )
    assert placed.status_code == 202, placed.text
    oid = placed.json()["id"]
    try:
        wait_until(lambda: status(traced_shop, "k-tracy", oid) == "FULFILLED", 60, "fulfilled")
    except TimeoutError:
        raise AssertionError(traced_shop.output()) from None

    def by(function: str) -> list[dict[str, Any]]:
        return [s for s in spans_of(trace_id) if s["function"] == function]

    def processed(consumer: str) -> bool:
        return any(s["name"].startswith("process ") and s["kind"] == 5 for s in by(consumer))

    def all_three_with_their_calls() -> bool:
        # A consumer's span ends after its calls': it may come in a later batch than theirs.
        return all(
            any(s["attrs"].get("rpc.service") == {"stringValue": "DynamoDB"} for s in by(f))
            for f in ("PlaceOrder", "ProcessOrder", "FulfilOrder")
        ) and all(processed(f) for f in ("ProcessOrder", "FulfilOrder"))

    wait_until(all_three_with_their_calls, 20, "the three functions' spans collected")
    request = next(s for s in by("PlaceOrder") if s["name"] == "POST /orders")
    assert request["parentSpanId"] == caller_span
    assert any(s["name"].startswith("redis ") for s in by("PlaceOrder"))
    assert any(s["name"] == "payment charge" for s in by("ProcessOrder"))


def complete(trace_id: str, child: str) -> bool:
    """Whether the request's span and the named one of its children were collected."""
    names = {(s["kind"], s["name"]) for s in spans_of(trace_id)}
    return any(kind == 2 for kind, _ in names) and any(name == child for _, name in names)


def test_a_cache_hit_answered_on_the_event_loop_is_one_request_span_with_its_redis_call(
    traced_shop: Cluster,
) -> None:
    pid = new_product(traced_shop, stock=1)

    def get(trace_id: str) -> httpx.Response:
        caller = random.token_hex(8)
        headers = {"traceparent": f"00-{trace_id}-{caller}-01"}
        return traced_shop.request("GET", f"/products/{pid}", headers=headers)

    miss, hit = random.token_hex(16), random.token_hex(16)
    assert get(miss).headers["x-cache"] == "MISS"
    answer = get(hit)
    assert answer.status_code == 200
    assert answer.headers["x-cache"] == "HIT"
    wait_until(lambda: complete(hit, "redis rate limit"), 20, "the hit's spans collected")
    # the hit never left the loop: the request's span and the Redis call it awaited
    (request,) = [s for s in spans_of(hit) if s["kind"] == 2]
    assert request["name"] == "GET /products/{productId}"
    assert request["attrs"]["http.response.status_code"] == {"intValue": "200"}
    (limit,) = [s for s in spans_of(hit) if s["name"] == "redis rate limit"]
    assert limit["parentSpanId"] == request["spanId"]
    # the miss went on to a worker thread: still one request span, the rest beneath it
    wait_until(lambda: complete(miss, "DynamoDB.GetItem"), 20, "the miss's spans collected")
    (request,) = [s for s in spans_of(miss) if s["kind"] == 2]
    below = [s for s in spans_of(miss) if s is not request]
    assert {s["name"] for s in below} >= {"redis rate limit", "DynamoDB.GetItem"}
    assert all(s["parentSpanId"] == request["spanId"] for s in below)


def test_a_pod_stopped_right_after_a_request_still_sends_its_spans(
    dynamodb_endpoint: str,
    redis_url: str,
    collector: str,
    tmp_path: Path,
) -> None:
    """Knative ends a pod with SIGTERM (scale to zero, a new revision): the spans the SDK
    still holds go out first, though its batch was not due for ten minutes."""
    env = container_env(knative_services(RENDERED)["health"], RENDERED, secrets(redis_url), None)
    traced = {
        **cluster_env(dynamodb_endpoint),
        "FUNCMART_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # ms
    }
    replica = start_replica("health", env, traced, image_app(tmp_path))
    trace_id = random.token_hex(16)
    try:
        wait_started([replica], 60)
        headers = {"traceparent": f"00-{trace_id}-{random.token_hex(8)}-01"}
        answer = httpx.get(f"{replica.url}/health", headers=headers, timeout=30)
        assert answer.status_code in (200, 503), answer.text
        assert spans_of(trace_id) == []  # held in the batch
    finally:
        stop(replica)
    assert replica.proc.returncode is not None
    wait_until(lambda: bool(spans_of(trace_id)), 10, "the stopped pod's spans collected")
    assert any(s["kind"] == 2 and s["name"] == "GET /health" for s in spans_of(trace_id))
