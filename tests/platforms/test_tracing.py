"""Traces with OpenTelemetry: W3C context into and out of every transport (HTTP headers, SQS
message attributes, the CloudEvents `traceparent` extension and the Knative host's record),
a batch of several orders linked to each, log lines with trace and span ids, the OTLP/HTTP
JSON exporter against a real HTTP server, and nothing at all when tracing is off.

Spans are recorded by the local platform's in-memory store (the process's one tracer
provider, as under `make dev`)."""

from __future__ import annotations

import io
import json
import logging
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
from cloudevents.http import CloudEvent

from funcmart.adapters import tracing
from funcmart.adapters.broker import CloudEventPublisher
from funcmart.adapters.event_signing import EventKeys
from funcmart.adapters.sqs import SqsPublisher
from funcmart.bootstrap import build
from funcmart.domain.orders import OrderPaid, OrderPlaced
from funcmart.entrypoints.queue import QueueFunction, QueueMessage, logger
from funcmart.settings import Settings
from funcmart_hosts.knative.host import cloudevent_to_sqs_record
from funcmart_hosts.local import traces
from funcmart_hosts.local.traces import TraceStore
from tests.fakes import FakeMetrics
from tests.support.events import sqs_event

ARN = "arn:aws:sqs:us-east-1:123456789012:orders"
URLS = {"OrderPlaced": "https://sqs/123/placed", "OrderPaid": "https://sqs/123/paid"}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[TraceStore]:
    """Tracing on for this test only, into the process's in-memory store."""
    kept = traces.install()
    monkeypatch.setattr(tracing, "_tracer", None)
    assert tracing.configure({"FUNCMART_TRACING": "otlp"})
    kept.clear()
    yield kept
    kept.clear()


@pytest.fixture
def off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_tracer", None)


def traceparent(trace_id: str | None = None, span_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{span_id or secrets.token_hex(8)}-01"


class FakeSqs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message", kwargs))
        return {}

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message_batch", kwargs))
        return {"Successful": kwargs["Entries"]}


def sent_traceparent(attributes: dict[str, Any]) -> str:
    return str(attributes["traceparent"]["StringValue"])


# ------------------------------------------------------------------- publishing


def test_a_published_message_carries_the_context_of_its_producer_span(store: TraceStore):
    sqs = FakeSqs()
    with tracing.span("record") as record:
        SqsPublisher(sqs, URLS).publish(OrderPlaced("o1", "c1"))
    ((_, call),) = sqs.calls
    version, trace_id, parent, flags = sent_traceparent(call["MessageAttributes"]).split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert trace_id == f"{record.get_span_context().trace_id:032x}"
    (publish,) = [s for s in store.spans(trace_id) if s.name == "publish OrderPlaced"]
    assert publish.span_id == parent
    assert publish.kind == "producer"
    assert publish.attributes["funcmart.order_id"] == "o1"


def test_events_sent_with_their_batch_keep_the_context_they_were_published_in(
    store: TraceStore,
):
    # GIVEN two records of one batch, each in its own order's trace, publishing an event
    sqs = FakeSqs()
    publisher = SqsPublisher(sqs, URLS)
    trace_ids = []
    with publisher.batched():
        for n in range(2):
            with tracing.span(f"record {n}") as record:
                trace_ids.append(f"{record.get_span_context().trace_id:032x}")
                publisher.publish(OrderPaid(f"o{n}", f"c{n}"))
    # WHEN the batch's events go out together, THEN each names its own record's trace
    ((_, call),) = sqs.calls
    sent = [sent_traceparent(e["MessageAttributes"]).split("-")[1] for e in call["Entries"]]
    assert sent == trace_ids
    assert store.spans(trace_ids[0]) != []


def test_a_republished_event_goes_on_in_its_orders_trace_linked_to_the_reconciler(
    store: TraceStore,
):
    # GIVEN an order placed in one trace, re-published by the reconciler's run (another)
    order_trace, placing_span = secrets.token_hex(16), secrets.token_hex(8)
    sqs = FakeSqs()
    with tracing.span("scheduled run") as run:
        event = OrderPlaced("o1", "c1", traceparent(order_trace, placing_span))
        SqsPublisher(sqs, URLS).publish(event)
    # THEN the message goes on in the order's trace, and its publish span links the run
    ((_, call),) = sqs.calls
    assert sent_traceparent(call["MessageAttributes"]).split("-")[1] == order_trace
    (publish,) = store.spans(order_trace)
    assert publish.parent_id == placing_span
    run_trace = f"{run.get_span_context().trace_id:032x}"
    assert [link["traceId"] for link in publish.links] == [run_trace]


@pytest.mark.usefixtures("off")
def test_with_tracing_off_a_message_carries_no_trace_attributes():
    sqs = FakeSqs()
    SqsPublisher(sqs, URLS).publish(OrderPlaced("o1", "c1"))
    ((_, call),) = sqs.calls
    assert set(call["MessageAttributes"]) == {"eventType", "correlationId"}


class Opened:
    status = 202

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *_: Any) -> None:
        return None


@pytest.mark.usefixtures("store")
def test_a_cloudevent_carries_traceparent_outside_its_signature():
    requests: list[Any] = []

    def opener(request: Any, timeout: float) -> Opened:
        assert timeout > 0
        requests.append(request)
        return Opened()

    keys = EventKeys("k" * 32)
    publisher = CloudEventPublisher("http://broker", keys, opener=opener)
    with tracing.span("request") as request_span:
        publisher.publish(OrderPlaced("o1", "c1"))
    (sent,) = requests
    headers = {k.lower(): v for k, v in sent.header_items()}
    trace_id = f"{request_span.get_span_context().trace_id:032x}"
    assert headers["ce-traceparent"].split("-")[1] == trace_id
    attributes = {k.removeprefix("ce-"): v for k, v in headers.items() if k.startswith("ce-")}
    # the broker may rewrite traceparent (Knative's own tracing does): the event still verifies
    attributes["traceparent"] = traceparent()
    assert keys.verify(attributes, sent.data)


def test_the_knative_host_hands_the_events_traceparent_to_the_consumer():
    parent = traceparent()
    event = CloudEvent(
        {
            "id": "e1",
            "source": "funcmart/place-order",
            "type": "dev.funcmart.order.placed",
            "traceparent": parent,
            "tracestate": "vendor=1",
        },
        {"type": "OrderPlaced", "orderId": "o1", "correlationId": "c1"},
    )
    record = cloudevent_to_sqs_record(event, "us-east-1")
    assert record["messageAttributes"]["traceparent"]["stringValue"] == parent
    assert record["messageAttributes"]["tracestate"]["stringValue"] == "vendor=1"
    untraced = CloudEvent({"id": "e2", "source": "s", "type": "t"}, {})
    assert "traceparent" not in cloudevent_to_sqs_record(untraced, "us-east-1")["messageAttributes"]


# ------------------------------------------------------------------- consuming


def batch_of(parents: list[str | None]) -> dict[str, Any]:
    event = sqs_event(
        [
            f'{{"type":"OrderPaid","orderId":"o{n}","correlationId":"c{n}"}}'
            for n in range(len(parents))
        ],
        ARN,
    )
    for record, parent in zip(event["Records"], parents, strict=True):
        if parent is not None:
            record["messageAttributes"]["traceparent"] = {
                "stringValue": parent,
                "dataType": "String",
            }
    return event


def consumer(on_message: Any) -> QueueFunction:
    settings = Settings.load({}, table_name="t")
    return QueueFunction(build(settings, metrics=FakeMetrics(), sqs_client=FakeSqs()), on_message)


def test_a_batch_of_several_orders_links_to_each_and_each_record_continues_its_own(
    store: TraceStore,
):
    # GIVEN a batch holding two orders' messages, from two traces
    parents = [traceparent(), traceparent()]
    seen: list[str | None] = []

    def on_message(_message: QueueMessage) -> str:
        ids = tracing.current_ids()
        seen.append(ids[0] if ids else None)
        return "done"

    # WHEN the consumer takes it (its log lines read through the Powertools formatter)
    out = io.StringIO()
    capture = logging.StreamHandler(out)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)
    try:
        answer = consumer(on_message).handler(batch_of(parents), None)
    finally:
        logger.removeHandler(capture)
    assert answer == {"batchItemFailures": []}
    # THEN each record's span continues its own order's trace, under the publisher's span
    for parent in parents:
        _, trace_id, span_id, _ = parent.split("-")
        (record,) = store.spans(trace_id)
        assert record.name == "process orders"
        assert record.kind == "consumer"
        assert record.parent_id == span_id
        assert trace_id in seen
    # and the batch is a trace of its own, linked to both orders' traces
    (batch_trace,) = [t for t in store.trace_ids() if t not in {p.split("-")[1] for p in parents}]
    (receive,) = store.spans(batch_trace)
    assert receive.name == "receive orders"
    assert receive.parent_id is None
    assert {link["traceId"] for link in receive.links} == {p.split("-")[1] for p in parents}
    # and the log lines of each record name its trace
    logged = [json.loads(line) for line in out.getvalue().splitlines() if line]
    done = [line for line in logged if line.get("message") == "message done"]
    assert done, logged
    assert {line.get("trace_id") for line in done} == {p.split("-")[1] for p in parents}
    assert all(len(line["span_id"]) == 16 for line in done)


def test_a_batch_of_one_order_continues_its_trace(store: TraceStore):
    parent = traceparent()
    trace_id = parent.split("-")[1]
    consumer(lambda _m: "done").handler(batch_of([parent]), None)
    spans = store.spans(trace_id)
    assert sorted(s.name for s in spans) == ["process orders", "receive orders"]
    assert all(s.trace_id == trace_id for s in spans)


def test_a_record_without_or_with_a_broken_traceparent_starts_a_trace(store: TraceStore):
    answer = consumer(lambda _m: "done").handler(batch_of([None, "00-nonsense-01"]), None)
    assert answer == {"batchItemFailures": []}
    records = [s for t in store.trace_ids() for s in store.spans(t) if s.name == "process orders"]
    assert len(records) == 2


def test_a_failed_record_is_a_failed_span(store: TraceStore):
    def fails(_message: QueueMessage) -> str:
        raise TimeoutError("the payment gateway did not answer")

    parent = traceparent()
    answer = consumer(fails).handler(batch_of([parent]), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    (record,) = [s for s in store.spans(parent.split("-")[1]) if s.name == "process orders"]
    assert record.status == "error"


# ------------------------------------------------------------------- the exporter


class Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        Collector.received.append((self.path, headers, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.received = []
    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_exporter_posts_otlp_json_to_the_endpoint_from_the_environment(collector: str):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    exporter = tracing.OtlpJsonExporter.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector + "/",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-team=shop",
        }
    )
    provider = TracerProvider(resource=Resource({"service.name": "funcmart"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    tracer = provider.get_tracer("funcmart")
    with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as outer:
        with tracer.start_as_current_span("DynamoDB.TransactWriteItems", kind=SpanKind.CLIENT):
            pass
        outer.set_attribute("http.response.status_code", 202)
    assert len(Collector.received) == 2
    path, headers, body = Collector.received[1]
    assert path == "/v1/traces"
    assert headers["content-type"] == "application/json"
    assert headers["x-team"] == "shop"
    (resource_spans,) = json.loads(body)["resourceSpans"]
    assert {"key": "service.name", "value": {"stringValue": "funcmart"}} in resource_spans[
        "resource"
    ]["attributes"]
    (span,) = resource_spans["scopeSpans"][0]["spans"]
    assert span["name"] == "POST /orders"
    assert span["kind"] == 2  # SPAN_KIND_SERVER
    assert span["traceId"] == f"{outer.get_span_context().trace_id:032x}"
    assert {"key": "http.response.status_code", "value": {"intValue": "202"}} in span["attributes"]
    (_, _, inner_body) = Collector.received[0]
    inner = json.loads(inner_body)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert inner["parentSpanId"] == span["spanId"]
    assert inner["kind"] == 3  # SPAN_KIND_CLIENT


def test_the_exporter_reports_a_collector_that_is_not_there() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert tracing.OtlpJsonExporter.from_env({}).endpoint == "http://localhost:4318/v1/traces"
    exporter = tracing.OtlpJsonExporter("http://127.0.0.1:9/v1/traces", timeout=0.5)
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        pass
    assert exporter.export([]) is SpanExportResult.SUCCESS
    assert exporter.export([span]) is SpanExportResult.FAILURE


def test_an_unknown_tracing_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="FUNCMART_TRACING"):
        tracing.mode({"FUNCMART_TRACING": "jaeger"})
    assert tracing.mode({}) == "off"
