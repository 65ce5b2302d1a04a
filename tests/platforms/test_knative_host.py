"""The Knative adapter's translations and settings, and the CloudEvent publisher, in process."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from funcmart.adapters.broker import CloudEventPublisher, cloudevent_type
from funcmart.adapters.event_signing import SIGNATURE_ATTRIBUTE, BadSignature, EventKeys
from funcmart.adapters.metrics import REGISTRY
from funcmart.bootstrap import Container
from funcmart.domain.errors import DependencyUnavailable, NotFound
from funcmart.domain.orders import OrderPaid, OrderPlaced
from funcmart.settings import Settings, SettingsError
from funcmart_hosts.knative import host
from funcmart_hosts.knative.host import (
    DeliveryFailed,
    DeliveryForbidden,
    DeliveryRefused,
    KnativeSettings,
    Runtime,
    cloudevent_to_sqs_record,
)
from tests.support.asgi import AsgiClient

SECRET = "unit-test-secret-of-at-least-32-bytes!"
EVENT_KEY = "unit-test-event-key-of-at-least-32-bytes"
KEYS = EventKeys(EVENT_KEY)


def settings(**env: str) -> KnativeSettings:
    base = {"FUNCMART_FUNCTION": "ProcessOrder", "FUNCMART_HANDLER": "m.handler"}
    return KnativeSettings.load({**base, "FUNCMART_EVENT_KEY": EVENT_KEY, **env})


def signed(event: CloudEvent, keys: EventKeys = KEYS) -> CloudEvent:
    """The event as our publishers send it: with their signature's extension attributes."""
    for name, value in keys.sign(event.get_attributes(), event.data).items():
        event[name] = value
    return event


def just_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def unsigned_order_placed(**attributes: str) -> CloudEvent:
    attrs = {"type": "dev.funcmart.order.placed", "source": "funcmart/place-order"}
    attrs["time"] = just_now()
    attrs.update(attributes)
    return CloudEvent(attrs, {"type": "OrderPlaced", "orderId": "o-1", "correlationId": "c-1"})


def order_placed(**attributes: str) -> CloudEvent:
    return signed(unsigned_order_placed(**attributes))


# ---------------------------------------------------------------------------- settings


def test_a_function_is_chosen_by_its_handler_trigger_and_routes() -> None:
    s = settings(
        FUNCMART_TRIGGER="http",
        FUNCMART_ROUTES='[{"route": "GET /products/{productId}", "public": true}]',
    )
    assert (s.function, s.handler, s.trigger) == ("ProcessOrder", "m.handler", "http")
    assert [(r.method, r.path, r.public) for r in s.routes] == [
        ("GET", "/products/{productId}", True)
    ]


def test_the_logical_id_alone_reads_the_function_from_the_template() -> None:
    s = KnativeSettings.load({"FUNCMART_FUNCTION": "ProcessOrder", "FUNCMART_EVENT_KEY": EVENT_KEY})
    assert (s.handler, s.trigger, s.timeout_seconds) == ("process_order.handler", "queue", 30)
    s = KnativeSettings.load({"FUNCMART_FUNCTION": "ReconcileOrders"})
    assert s.trigger == "schedule"


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"FUNCMART_TRIGGER": "timer"}, "FUNCMART_TRIGGER"),
        ({"FUNCMART_TRIGGER": "http"}, "FUNCMART_ROUTES"),
        ({"FUNCMART_TRIGGER": "http", "FUNCMART_ROUTES": "GET /x"}, "JSON"),
        (
            {"FUNCMART_TRIGGER": "http", "FUNCMART_ROUTES": '[{"route": "POST /x"}]'},
            "FUNCMART_JWT_ISSUER",
        ),
        (
            {
                "FUNCMART_TRIGGER": "http",
                "FUNCMART_ROUTES": '[{"route": "POST /x"}]',
                "FUNCMART_JWT_ISSUER": "https://i/",
                "FUNCMART_JWT_AUDIENCE": "a",
                "FUNCMART_JWT_SECRET": "short",
            },
            "32 bytes",
        ),
    ],
)
def test_a_misconfigured_function_fails_at_start(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(SettingsError, match=complaint):
        settings(**env)


def test_a_consumer_without_an_event_key_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="FUNCMART_EVENT_KEY is not set"):
        KnativeSettings.load({"FUNCMART_HANDLER": "m.handler", "FUNCMART_TRIGGER": "queue"})


def test_a_publisher_without_an_event_key_refuses_to_start() -> None:
    env = {
        "FUNCMART_HANDLER": "m.handler",
        "FUNCMART_TRIGGER": "http",
        "FUNCMART_ROUTES": '[{"route": "GET /x", "public": true}]',
        "PUBLISHER": "cloudevents",
    }
    # (An HTTP function with no broker to publish to needs no key.)
    assert KnativeSettings.load(env).event_key is None
    with pytest.raises(SettingsError, match="publisher"):
        KnativeSettings.load({**env, "K_SINK": "http://broker/"})


@pytest.mark.parametrize("variable", ["FUNCMART_EVENT_KEY", "FUNCMART_EVENT_KEY_PREVIOUS"])
@pytest.mark.parametrize(
    ("key", "complaint"),
    [
        ("replace-me-with-at-least-32-random-bytes-of-secret", "placeholder"),
        ("funcmart-local-dev-secret-do-not-use-in-any-deployment", "placeholder"),
        ("changeme-changeme-changeme-changeme-changeme", "placeholder"),
        ("x" * 31, "32 bytes"),
    ],
)
def test_a_placeholder_or_short_event_key_is_refused_at_start(
    variable: str, key: str, complaint: str
) -> None:
    with pytest.raises(SettingsError, match=f"{variable} .*{complaint}"):
        settings(FUNCMART_TRIGGER="queue", **{variable: key})


def test_the_event_keys_are_never_shown_in_a_repr() -> None:
    s = settings(FUNCMART_TRIGGER="queue", FUNCMART_EVENT_KEY_PREVIOUS="p" * 40)
    assert EVENT_KEY not in repr(s)
    assert "p" * 40 not in repr(s)
    assert s.event_keys() == EventKeys(EVENT_KEY, "p" * 40)


def test_nothing_chosen_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="FUNCMART_HANDLER"):
        KnativeSettings.load({})


def test_an_unknown_logical_id_fails_at_start() -> None:
    with pytest.raises(SettingsError, match="no function"):
        KnativeSettings.load({"FUNCMART_FUNCTION": "Nope"})


# ------------------------------------------------------------------------- CloudEvents


def test_a_cloudevent_becomes_one_sqs_record_with_the_same_body() -> None:
    record = cloudevent_to_sqs_record(order_placed(id="ev-1", correlationid="c-1"), "eu-west-1")
    assert record["messageId"] == "ev-1"
    assert json.loads(record["body"]) == {
        "type": "OrderPlaced",
        "orderId": "o-1",
        "correlationId": "c-1",
    }
    assert record["messageAttributes"]["correlationId"]["stringValue"] == "c-1"
    assert record["messageAttributes"]["eventType"]["stringValue"] == "dev.funcmart.order.placed"
    assert record["eventSource"] == "knative:broker"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


def test_a_dead_lettered_event_is_named_from_signed_attributes_only() -> None:
    # knativeerrordest is not signed: whatever it says never reaches the function
    event = order_placed(
        knativeerrordest="http://see-our-site-for-a-refund.example", knativeerrorcode="500"
    )
    record = cloudevent_to_sqs_record(event, "us-east-1")
    assert record["eventSourceARN"].rsplit(":", 1)[-1] == "order-placed-queue"
    assert "refund" not in json.dumps(record)
    sent = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
    assert int(record["attributes"]["SentTimestamp"]) == int(sent * 1000)


def test_a_replayed_event_older_than_the_window_is_refused_and_runs_nothing() -> None:
    handler = Recorder({"batchItemFailures": []})
    runtime = Runtime(settings(FUNCMART_TRIGGER="queue"), handler)
    captured = order_placed(time="2026-01-01T00:00:00.000Z")
    with pytest.raises(DeliveryForbidden) as refused:
        runtime.serve_cloudevent(captured)
    assert refused.value.status == 403
    assert handler.events == []


def test_an_event_meant_for_another_consumer_is_refused() -> None:
    handler = Recorder({"batchItemFailures": []})
    fulfil = Runtime(settings(FUNCMART_TRIGGER="queue", FUNCMART_FUNCTION="FulfilOrder"), handler)
    with pytest.raises(DeliveryForbidden):
        fulfil.serve_cloudevent(order_placed())  # OrderPlaced is ProcessOrder's
    assert handler.events == []


@pytest.mark.parametrize("consumer", ["HandleDeadLetters", "handle-dead-letters"])
def test_the_dead_letter_sink_takes_every_signed_type(consumer: str) -> None:
    handler = Recorder({"batchItemFailures": []})
    sink = Runtime(settings(FUNCMART_TRIGGER="queue", FUNCMART_FUNCTION=consumer), handler)
    sink.serve_cloudevent(
        order_placed(knativeerrordest="http://process-order", knativeerrorcode="500")
    )
    assert len(handler.events) == 1


class Recorder:
    def __init__(self, result: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.result = result

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        return self.result


def test_a_consumer_reporting_the_record_failed_makes_the_delivery_fail() -> None:
    handler = Recorder({"batchItemFailures": [{"itemIdentifier": "ev-9"}]})
    runtime = Runtime(settings(FUNCMART_TRIGGER="queue"), handler)
    with pytest.raises(DeliveryFailed):
        runtime.serve_cloudevent(order_placed(id="ev-9"))
    assert handler.contexts[0].function_name == "ProcessOrder"


def consumer(on_message: Any) -> Any:
    """A real queue function over the container's defaults (no dead-letter queue)."""
    from funcmart.entrypoints.queue import QueueFunction
    from tests.fakes import FakeMetrics

    deps = Container(Settings.load({}, table_name="unused"), metrics=FakeMetrics())
    return QueueFunction(deps, on_message).handler


def test_an_event_no_retry_can_fix_is_refused_for_the_dead_letter_sink() -> None:
    # GIVEN a consumer for which the event's order does not exist (a permanent failure)
    def unknown_order(_message: Any) -> str:
        raise NotFound("order o-1 does not exist")

    runtime = Runtime(settings(FUNCMART_TRIGGER="queue"), consumer(unknown_order))
    # WHEN the broker delivers it THEN it is refused with a status the broker does not retry
    with pytest.raises(DeliveryRefused) as refused:
        runtime.serve_cloudevent(order_placed(id="ev-7"))
    assert refused.value.status == 422
    assert "NotFound" in str(refused.value)


def test_a_transient_failure_is_answered_for_the_broker_to_retry() -> None:
    def provider_down(_message: Any) -> str:
        raise DependencyUnavailable("payment provider unreachable")

    runtime = Runtime(settings(FUNCMART_TRIGGER="queue"), consumer(provider_down))
    with pytest.raises(DeliveryFailed) as failed:
        runtime.serve_cloudevent(order_placed(id="ev-8"))
    assert type(failed.value) is DeliveryFailed
    assert failed.value.status == 500


def test_a_permanent_failure_of_another_record_does_not_refuse_this_one() -> None:
    handler = Recorder(
        {
            "batchItemFailures": [{"itemIdentifier": "ev-9"}],
            "permanentFailures": [{"itemIdentifier": "ev-other", "reason": "x"}],
        }
    )
    runtime = Runtime(settings(FUNCMART_TRIGGER="queue"), handler)
    with pytest.raises(DeliveryFailed) as failed:
        runtime.serve_cloudevent(order_placed(id="ev-9"))
    assert failed.value.status == 500


def test_a_consumer_that_succeeds_returns_quietly() -> None:
    handler = Recorder({"batchItemFailures": []})
    Runtime(settings(FUNCMART_TRIGGER="queue"), handler).serve_cloudevent(order_placed())
    assert len(handler.events[0]["Records"]) == 1


def ping() -> CloudEvent:
    """What a PingSource sends: it cannot sign."""
    return CloudEvent(
        {
            "id": "ping-1",
            "type": "dev.knative.sources.ping",
            "source": "/apis/v1/namespaces/shop/pingsources/reconcile-orders-schedule",
        },
        {},
    )


def test_a_ping_source_event_becomes_a_scheduled_event() -> None:
    handler = Recorder({"republished": 0})
    runtime = Runtime(settings(FUNCMART_TRIGGER="schedule", POD_NAMESPACE="shop"), handler)
    runtime.serve_cloudevent(ping())
    (event,) = handler.events
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["id"] == "ping-1"
    assert event["resources"][0].endswith(":pingsource/reconcile-orders-schedule")


# ------------------------------------------------------------------- signed CloudEvents


def refusals() -> float:
    return REGISTRY.counters.get("EventSignatureFailures", 0)


@pytest.mark.parametrize(
    "event",
    [
        unsigned_order_placed(id="ev-u"),
        signed(unsigned_order_placed(id="ev-w"), EventKeys("w" * 40)),
        signed(unsigned_order_placed(id="ev-t", subject="o-1"), KEYS),
        ping(),  # a forged PingSource tick, sent to a queue consumer
    ],
    ids=["unsigned", "wrong key", "tampered", "ping to a consumer"],
)
def test_a_consumer_refuses_an_event_we_did_not_sign_and_runs_nothing(event: CloudEvent) -> None:
    # GIVEN a consumer, and an event that is not signed with its key
    if event["id"] == "ev-t":
        event["subject"] = "o-2"  # changed after signing
    handler = Recorder({"batchItemFailures": []})
    runtime = Runtime(settings(FUNCMART_TRIGGER="queue"), handler)
    before = refusals()
    # WHEN it is delivered THEN it is refused with 403, counted, and the function never ran
    with pytest.raises(DeliveryForbidden) as refused:
        runtime.serve_cloudevent(event)
    assert refused.value.status == 403
    assert handler.events == []
    assert refusals() == before + 1


def test_a_consumer_takes_an_event_signed_with_its_previous_key_during_a_rotation() -> None:
    handler = Recorder({"batchItemFailures": []})
    rotating = settings(
        FUNCMART_TRIGGER="queue",
        FUNCMART_EVENT_KEY="n" * 40,
        FUNCMART_EVENT_KEY_PREVIOUS=EVENT_KEY,
    )
    Runtime(rotating, handler).serve_cloudevent(order_placed())
    assert len(handler.events) == 1


def test_a_schedule_takes_its_ping_source_unsigned_but_nothing_else() -> None:
    handler = Recorder({"republished": 0})
    runtime = Runtime(settings(FUNCMART_TRIGGER="schedule"), handler)
    runtime.serve_cloudevent(ping())
    with pytest.raises(DeliveryForbidden):
        runtime.serve_cloudevent(unsigned_order_placed())
    assert len(handler.events) == 1


@pytest.fixture
def app_of(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The host's ASGI app for a runtime, as the image serves it."""

    def build(runtime: Runtime) -> Any:
        monkeypatch.setattr(host, "runtime", lambda: runtime)
        return AsgiClient(host.create_app())

    return build


def binary_headers(event: CloudEvent) -> dict[str, str]:
    from cloudevents.conversion import to_binary

    headers, _ = to_binary(event)
    return dict(headers)


def test_over_http_an_unsigned_event_is_a_403_problem_and_a_signed_one_is_processed(
    app_of: Any,
) -> None:
    handler = Recorder({"batchItemFailures": []})
    client = app_of(Runtime(settings(FUNCMART_TRIGGER="queue"), handler))
    body = json.dumps({"type": "OrderPlaced", "orderId": "o-1", "correlationId": "c-1"})
    # WHEN a pod POSTs an event it made up straight to the consumer's Service
    forged = client.post("/", data=body, headers=binary_headers(unsigned_order_placed()))
    # THEN 403 problem+json, and the function never ran
    assert forged.status_code == 403
    assert forged.headers["Content-Type"] == "application/problem+json"
    problem = forged.get_json(force=True)
    assert problem["status"] == 403
    assert "funcmartsig" in problem["detail"]
    assert handler.events == []
    # AND the same event signed by our publisher is processed
    answer = client.post("/", data=body, headers=binary_headers(order_placed()))
    assert answer.status_code == 200
    assert len(handler.events) == 1


def test_over_http_every_refused_delivery_is_a_problem(app_of: Any) -> None:
    handler = Recorder({"batchItemFailures": [{"itemIdentifier": "ev-5"}]})
    client = app_of(Runtime(settings(FUNCMART_TRIGGER="queue"), handler))
    event = order_placed(id="ev-5")
    answer = client.post("/", data=json.dumps(event.data), headers=binary_headers(event))
    assert answer.status_code == 500
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.get_json(force=True)["status"] == 500


# ---------------------------------------------------------------------------- publisher


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status = status

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_events_are_posted_in_binary_mode_with_their_type() -> None:
    request = sent_request(OrderPaid("o-2", "c-2"), "http://broker/ns/default")
    headers = {k.lower(): v for k, v in request.header_items()}
    assert request.get_method() == "POST"
    assert headers["ce-type"] == "dev.funcmart.order.paid"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-source"] == "funcmart/x"
    assert headers["ce-subject"] == "o-2"
    assert headers["ce-correlationid"] == "c-2"
    assert headers["content-type"] == "application/json"
    assert json.loads(request.data) == {
        "type": "OrderPaid",
        "orderId": "o-2",
        "correlationId": "c-2",
    }


@pytest.mark.parametrize(
    "failure",
    [
        lambda *_a, **_kw: FakeResponse(500),
        lambda *_a, **_kw: (_ for _ in ()).throw(urllib.error.URLError("refused")),
        lambda request, **_kw: (_ for _ in ()).throw(
            urllib.error.HTTPError(request.full_url, 503, "busy", {}, None)  # type: ignore[arg-type]
        ),
    ],
    ids=["500", "unreachable", "HTTPError"],
)
def test_a_broker_that_does_not_accept_is_a_dependency_failure(failure: Any) -> None:
    tries: list[Any] = []

    def opener(request: Any, **kw: Any) -> Any:
        tries.append(request)
        return failure(request, **kw)

    publisher = CloudEventPublisher("http://broker/", KEYS, opener=opener, sleep=lambda _s: None)
    with pytest.raises(DependencyUnavailable):
        publisher.publish(OrderPlaced("o", "c"))
    assert len(tries) == 3  # each a failure another attempt might not meet


def timed_out(*_a: Any, **_kw: Any) -> Any:
    raise urllib.error.URLError(TimeoutError("timed out"))  # what urlopen raises on connect


def busy(request: Any, **_kw: Any) -> Any:
    raise urllib.error.HTTPError(request.full_url, 503, "busy", {}, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "first",
    [timed_out, busy, lambda *_a, **_kw: FakeResponse(429), lambda *_a, **_kw: FakeResponse(500)],
    ids=["connect timed out", "503", "429", "500"],
)
def test_an_event_the_broker_did_not_take_is_sent_again_as_the_same_event(first: Any) -> None:
    # GIVEN a broker that fails the first POST as a busy ingress does, then takes the event
    sent: list[dict[str, str]] = []
    waits: list[float] = []

    def opener(request: Any, **kw: Any) -> Any:
        sent.append({k.lower(): v for k, v in request.header_items()})
        return first(request, **kw) if len(sent) == 1 else FakeResponse(202)

    publisher = CloudEventPublisher("http://broker/", KEYS, opener=opener, sleep=waits.append)
    # WHEN an event is published
    publisher.publish(OrderPaid("o-9", "c-9"))
    # THEN it is posted again after a pause, as the same event: one id, one signature
    assert len(sent) == 2
    assert len(waits) == 1
    assert sent[0]["ce-id"] == sent[1]["ce-id"]
    assert sent[0]["ce-funcmartsig"] == sent[1]["ce-funcmartsig"]


@pytest.mark.parametrize("status", [400, 403, 413])
def test_an_event_the_broker_refuses_is_not_sent_again(status: int) -> None:
    sent: list[Any] = []

    def opener(request: Any, **_kw: Any) -> FakeResponse:
        sent.append(request)
        return FakeResponse(status)

    publisher = CloudEventPublisher("http://broker/", KEYS, opener=opener, sleep=lambda _s: None)
    with pytest.raises(DependencyUnavailable, match=str(status)):
        publisher.publish(OrderPlaced("o", "c"))
    assert len(sent) == 1


def test_an_event_is_published_through_a_broker_whose_accept_queue_was_full() -> None:
    """What a burst does to a broker ingress that accepts slowly: its listen queue full, the
    kernel drops the publisher's SYN and the connect times out. The event is posted again and
    taken once the ingress has caught up."""
    # GIVEN a broker whose accept queue is full (listen(0) holds one connection, taken here)
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)
    received: list[str] = []

    class Ingress(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(self.headers.get("ce-id", ""))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(listener.getsockname(), Ingress, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    serving: list[threading.Thread] = []

    def catch_up(_seconds: float) -> None:
        # the ingress catches up between two attempts: it drains its queue, then serves
        if not serving:
            conn, _ = listener.accept()
            conn.close()
            serving.append(threading.Thread(target=server.serve_forever, daemon=True))
            serving[0].start()

    url = "http://{}:{}/funcmart/default".format(*listener.getsockname())
    publisher = CloudEventPublisher(url, KEYS, "funcmart/x", 0.5, sleep=catch_up)
    try:
        # WHEN an event is published: the first connect times out
        publisher.publish(OrderPlaced("o-full", "c-full"))
    finally:
        if serving:
            server.shutdown()
        server.server_close()
        filler.close()
    # THEN the broker has the event, once, from the attempt after the ingress caught up
    assert serving
    (event_id,) = received
    assert event_id


@contextlib.contextmanager
def http11_ingress(*, closes_idle: bool) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """A broker ingress speaking HTTP/1.1 keep-alive; each event's ce-id and the client port
    it came from. With `closes_idle` it closes each connection after answering, without
    saying so, as an ingress closing an idle connection does between two publishes."""
    received: list[tuple[str, int]] = []

    class Ingress(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.headers.get("ce-id", ""), self.client_address[1]))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = closes_idle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingress)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://{}:{}/funcmart/default".format(*server.server_address), received
    finally:
        server.shutdown()
        server.server_close()


def test_publishes_from_one_thread_share_one_connection_to_the_broker() -> None:
    with http11_ingress(closes_idle=False) as (url, received):
        publisher = CloudEventPublisher(url, KEYS, "funcmart/x", 2, sleep=lambda _s: None)
        # WHEN three events are published one after the other
        for n in range(3):
            publisher.publish(OrderPaid(f"o-{n}", f"c-{n}"))
    # THEN the broker took all three over one connection, not one connection each
    assert len(received) == 3
    assert len({port for _id, port in received}) == 1


def test_a_kept_connection_the_broker_closed_is_replaced_at_once() -> None:
    waits: list[float] = []
    with http11_ingress(closes_idle=True) as (url, received):
        publisher = CloudEventPublisher(url, KEYS, "funcmart/x", 2, sleep=waits.append)
        # WHEN two events are published and the broker closed the first one's connection
        publisher.publish(OrderPaid("o-1", "c-1"))
        time.sleep(0.05)  # the close reaches the publisher's socket
        publisher.publish(OrderPaid("o-2", "c-2"))
    # THEN the second went on a new connection, without a retry's pause, and arrived once
    assert len(received) == 2
    assert received[0][1] != received[1][1]
    assert len({event_id for event_id, _port in received}) == 2
    assert waits == []


def test_no_broker_configured_is_a_dependency_failure() -> None:
    with pytest.raises(DependencyUnavailable, match="BROKER_URL"):
        CloudEventPublisher(None, KEYS).publish(OrderPlaced("o", "c"))


def sent_request(event: Any, broker: str = "http://broker/", keys: EventKeys = KEYS) -> Any:
    """The one request the publisher sends for `event`."""
    sent: list[Any] = []

    def opener(request: Any, **_kw: Any) -> FakeResponse:
        sent.append(request)
        return FakeResponse(202)

    CloudEventPublisher(broker, keys, "funcmart/x", 1, opener).publish(event)
    (request,) = sent
    return request


def published(keys: EventKeys = KEYS) -> tuple[dict[str, str], bytes]:
    request = sent_request(OrderPlaced("o-3", "c-3"), keys=keys)
    return dict(request.header_items()), bytes(request.data)


def test_published_events_are_signed_and_verify_after_the_broker_re_encodes_them() -> None:
    from cloudevents.conversion import to_structured
    from cloudevents.http import from_http

    headers, body = published()
    assert {k.lower() for k in headers} >= {"ce-funcmartsig", "ce-funcmartkeyid"}
    # As the consumer's SDK reads it in binary mode
    received = from_http(headers, body)
    assert KEYS.verify(received.get_attributes(), received.data)
    # and after the broker turned it into a structured-mode event and back
    s_headers, s_body = to_structured(received)
    envelope = json.loads(s_body)
    envelope["time"] = envelope["time"].replace("Z", "+00:00")  # another SDK's way to write it
    again = from_http(s_headers, json.dumps(envelope, indent=1).encode())
    assert KEYS.verify(again.get_attributes(), again.data)
    # but never with another key
    with pytest.raises(BadSignature):
        EventKeys("z" * 40).verify(again.get_attributes(), again.data)


def test_a_published_event_changed_on_the_way_does_not_verify() -> None:
    from cloudevents.http import from_http

    headers, body = published()
    tampered = body.replace(b"o-3", b"o-4")
    received = from_http(headers, tampered)
    with pytest.raises(BadSignature):
        KEYS.verify(received.get_attributes(), received.data)
    assert received[SIGNATURE_ATTRIBUTE]


def test_event_types_map_to_cloudevent_types() -> None:
    assert cloudevent_type("OrderPlaced") == "dev.funcmart.order.placed"
    with pytest.raises(ValueError, match="order_placed"):
        cloudevent_type("order_placed")


def test_settings_choose_the_publisher() -> None:
    env = {"TABLE_NAME": "t", "PUBLISHER": "cloudevents", "K_SINK": "http://sink/"}
    with pytest.raises(SettingsError, match="FUNCMART_EVENT_KEY"):
        _ = Container(Settings.load(env)).publisher  # it would send events nobody accepts
    deps = Container(Settings.load({**env, "FUNCMART_EVENT_KEY": EVENT_KEY}))
    assert isinstance(deps.publisher, CloudEventPublisher)
    assert deps.settings.broker_url == "http://sink/"
    with pytest.raises(SettingsError, match="PUBLISHER"):
        Settings.load({"TABLE_NAME": "t", "PUBLISHER": "kafka"})


def test_no_secret_shows_in_the_knative_settings_repr() -> None:
    s = settings(
        FUNCMART_TRIGGER="queue",
        FUNCMART_JWT_SECRET="jwt-secret-do-not-print-me-32-bytes!!",
    )
    assert "do-not-print-me" not in repr(s)
    assert EVENT_KEY not in repr(s)


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, b'{"type": "OrderPlaced", "orderId": "\xff\xfe"}'],
    ids=["30000 deep", "not UTF-8"],
)
def test_a_malformed_cloudevent_body_is_a_400_problem_before_any_work(
    app_of: Any, body: bytes
) -> None:
    handler = Recorder({"batchItemFailures": []})
    client = app_of(Runtime(settings(FUNCMART_TRIGGER="queue"), handler))
    refusals = REGISTRY.prometheus_text().count("event_signature_failures_total 1")
    answer = client.post("/", data=body, headers=binary_headers(order_placed()))
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.get_json()["status"] == 400
    assert handler.events == []
    assert REGISTRY.prometheus_text().count("event_signature_failures_total 1") == refusals
