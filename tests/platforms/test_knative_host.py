"""The Knative adapter's translations and settings, and the CloudEvent publisher, in process."""

from __future__ import annotations

import json
import urllib.error
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from funcmart.adapters.broker import CloudEventPublisher, cloudevent_type
from funcmart.bootstrap import Container
from funcmart.domain.errors import DependencyUnavailable, NotFound
from funcmart.domain.orders import OrderPaid, OrderPlaced
from funcmart.settings import Settings, SettingsError
from funcmart_hosts.knative.host import (
    DeliveryFailed,
    DeliveryRefused,
    KnativeSettings,
    Runtime,
    cloudevent_to_sqs_record,
)

SECRET = "unit-test-secret-of-at-least-32-bytes!"


def settings(**env: str) -> KnativeSettings:
    base = {"FUNCMART_FUNCTION": "Fn", "FUNCMART_HANDLER": "m.handler"}
    return KnativeSettings.load({**base, **env})


def order_placed(**attributes: str) -> CloudEvent:
    attrs = {"type": "dev.funcmart.order.placed", "source": "funcmart/place-order"}
    attrs.update(attributes)
    return CloudEvent(attrs, {"type": "OrderPlaced", "orderId": "o-1", "correlationId": "c-1"})


# ---------------------------------------------------------------------------- settings


def test_a_function_is_chosen_by_its_handler_trigger_and_routes() -> None:
    s = settings(
        FUNCMART_TRIGGER="http",
        FUNCMART_ROUTES='[{"route": "GET /products/{productId}", "public": true}]',
    )
    assert (s.function, s.handler, s.trigger) == ("Fn", "m.handler", "http")
    assert [(r.method, r.path, r.public) for r in s.routes] == [
        ("GET", "/products/{productId}", True)
    ]


def test_the_logical_id_alone_reads_the_function_from_the_template() -> None:
    s = KnativeSettings.load({"FUNCMART_FUNCTION": "ProcessOrder"})
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


def test_a_dead_lettered_event_names_the_subscriber_that_gave_up() -> None:
    event = order_placed(
        knativeerrordest="http://process-order.funcmart.svc.cluster.local", knativeerrorcode="500"
    )
    record = cloudevent_to_sqs_record(event, "us-east-1")
    assert record["eventSourceARN"].rsplit(":", 1)[-1] == "process-order"


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
    assert handler.contexts[0].function_name == "Fn"


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


def test_a_ping_source_event_becomes_a_scheduled_event() -> None:
    handler = Recorder({"republished": 0})
    runtime = Runtime(settings(FUNCMART_TRIGGER="schedule", POD_NAMESPACE="shop"), handler)
    ping = CloudEvent(
        {
            "id": "ping-1",
            "type": "dev.knative.sources.ping",
            "source": "/apis/v1/namespaces/shop/pingsources/reconcile-orders-schedule",
        },
        {},
    )
    runtime.serve_cloudevent(ping)
    (event,) = handler.events
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["id"] == "ping-1"
    assert event["resources"][0].endswith(":pingsource/reconcile-orders-schedule")


# ---------------------------------------------------------------------------- publisher


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status = status

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_events_are_posted_in_binary_mode_with_their_type() -> None:
    sent: list[Any] = []

    def opener(request: Any, **_kw: Any) -> FakeResponse:
        sent.append(request)
        return FakeResponse(202)

    CloudEventPublisher("http://broker/ns/default", "funcmart/x", 1, opener).publish(
        OrderPaid("o-2", "c-2")
    )
    (request,) = sent
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
    with pytest.raises(DependencyUnavailable):
        CloudEventPublisher("http://broker/", opener=failure).publish(OrderPlaced("o", "c"))


def test_no_broker_configured_is_a_dependency_failure() -> None:
    with pytest.raises(DependencyUnavailable, match="BROKER_URL"):
        CloudEventPublisher(None).publish(OrderPlaced("o", "c"))


def test_event_types_map_to_cloudevent_types() -> None:
    assert cloudevent_type("OrderPlaced") == "dev.funcmart.order.placed"
    with pytest.raises(ValueError, match="order_placed"):
        cloudevent_type("order_placed")


def test_settings_choose_the_publisher() -> None:
    env = {"TABLE_NAME": "t", "PUBLISHER": "cloudevents", "K_SINK": "http://sink/"}
    deps = Container(Settings.load(env))
    assert isinstance(deps.publisher, CloudEventPublisher)
    assert deps.settings.broker_url == "http://sink/"
    with pytest.raises(SettingsError, match="PUBLISHER"):
        Settings.load({"TABLE_NAME": "t", "PUBLISHER": "kafka"})
