"""Queue errors mapped once, over real SQS queues (moto's server): a message no retry can fix
reaches the dead-letter queue on its first receive; a transient failure is still retried.

The test plays Lambda's part of the event source mapping: receive a batch, invoke the
consumer with it, delete the records the answer does not name as failed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from funcmart.bootstrap import build
from funcmart.domain.commands import PlaceOrder
from funcmart.domain.orders import OrderPlaced, RequestedLine
from funcmart.entrypoints.queue import QueueFunction, QueueMessage
from funcmart.services import orders
from funcmart.settings import Settings
from funcmart_hosts.gateway.sqs import failed_message_ids, sqs_event
from tests.fakes import FakeMetrics
from tests.support.builders import customer, fake_order_ports, fake_product, random_id

REGION = "us-east-1"


class Queues:
    """A source queue redriving to its dead-letter queue after five receives, as the
    template's queues do."""

    def __init__(self, endpoint: str) -> None:
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        name = f"orders-{uuid.uuid4().hex[:8]}"
        self.dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = self.arn(self.dlq_url)
        self.url = self.sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}
                ),
            },
        )["QueueUrl"]

    def arn(self, url: str) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def send(self, body: str, correlation_id: str = "corr-1") -> None:
        self.sqs.send_message(
            QueueUrl=self.url,
            MessageBody=body,
            MessageAttributes={
                "correlationId": {"DataType": "String", "StringValue": correlation_id}
            },
        )

    def receive(self, url: str | None = None) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=url or self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages") or [])

    def deliver(self, handler: Callable[[dict[str, Any], Any], Any]) -> set[str]:
        """One receive and one invocation, as Lambda's mapping does them; the failed ids."""
        messages = self.receive()
        assert messages, "nothing to deliver"
        result = handler(sqs_event(messages, self.arn(self.url), REGION), None)
        failed = failed_message_ids(result, {m["MessageId"] for m in messages})
        assert failed is not None, f"an answer Lambda would refuse: {result}"
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return failed

    def counts(self, url: str) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def queues(moto_endpoint: str) -> Iterator[Queues]:
    q = Queues(moto_endpoint)
    yield q
    for url in (q.url, q.dlq_url):
        q.sqs.delete_queue(QueueUrl=url)


def process_order_function(
    queues: Queues, moto_endpoint: str, dead_letter_queue_url: str | None = "given"
) -> tuple[QueueFunction, Any, FakeMetrics]:
    """ProcessOrder's consumer over fake order ports and the real queues; retries come back
    at once (backoff base 0) so that the test sees them."""
    ns = fake_order_ports()
    metrics = FakeMetrics()
    settings = Settings.load(
        {},
        table_name="unused",
        sqs_endpoint=moto_endpoint,
        aws_region=REGION,
        retry_backoff_base_seconds=0,
        dead_letter_queue_url=queues.dlq_url
        if dead_letter_queue_url == "given"
        else dead_letter_queue_url,
    )

    def on_message(message: QueueMessage) -> str:
        return orders.process_order(ns.ports, message.event_of(OrderPlaced))

    return QueueFunction(build(settings, metrics=metrics), on_message), ns, metrics


def order_placed(order_id: str, correlation_id: str = "corr-1") -> str:
    return json.dumps({"type": "OrderPlaced", "orderId": order_id, "correlationId": correlation_id})


def place(ns: Any, token: str) -> str:
    pid = fake_product(ns)
    placed = orders.place_order(
        ns.ports,
        customer("buyer"),
        PlaceOrder(
            idempotency_key=random_id("key-"),
            lines=[RequestedLine(pid, 1)],
            payment_token=token,
            request_body={"lines": [{"productId": pid, "quantity": 1}], "paymentToken": token},
            correlation_id=random_id("corr-"),
        ),
    )
    return str(placed.body["id"])


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (order_placed("o-never-placed"), "NotFound"),  # an unknown order
        ("this is not JSON", "InvalidRequest"),  # an unreadable message
        (json.dumps({"type": "OrderPaid", "orderId": "o1"}), "InvalidRequest"),  # wrong queue
    ],
    ids=["unknown-order", "unreadable", "another-event"],
)
def test_a_poison_message_reaches_the_dead_letter_queue_on_its_first_receive(
    queues: Queues, moto_endpoint: str, body: str, why: str
) -> None:
    # GIVEN a message no retry can fix, among good ones
    fn, ns, metrics = process_order_function(queues, moto_endpoint)
    good = place(ns, "tok_ok")
    queues.send(body, correlation_id="corr-poison")
    queues.send(order_placed(good))
    # WHEN it is received once
    failed = queues.deliver(fn.handler)
    # THEN nothing is reported failed: the poison is in the dead-letter queue already, with
    # its body, its attributes and why; the good order is paid; the source queue is empty
    assert failed == set()
    (dead,) = queues.receive(queues.dlq_url)
    assert dead["Body"] == body
    attributes = dead["MessageAttributes"]
    assert attributes["correlationId"]["StringValue"] == "corr-poison"
    assert attributes["failure"]["StringValue"].startswith(f"{why}: ")
    assert queues.counts(queues.url) == 0
    assert ns.orders.get(good).status == "PAID"
    assert metrics.counters["PermanentFailures"] == 1


def test_a_transient_failure_is_retried_and_never_dead_lettered_early(
    queues: Queues, moto_endpoint: str
) -> None:
    # GIVEN an order whose payment provider times out
    fn, ns, metrics = process_order_function(queues, moto_endpoint)
    queues.send(order_placed(place(ns, "tok_transient")))
    # WHEN it is delivered twice
    first = queues.deliver(fn.handler)
    second = queues.deliver(fn.handler)
    # THEN both deliveries fail and it stays on its queue (received twice), with nothing
    # dead-lettered and nothing counted as permanent
    assert len(first) == len(second) == 1
    (again,) = queues.receive()
    assert again["Attributes"]["ApproximateReceiveCount"] == "3"
    assert queues.counts(queues.dlq_url) == 0
    assert "PermanentFailures" not in metrics.counters


def test_a_poison_message_that_cannot_be_dead_lettered_is_retried(
    queues: Queues, moto_endpoint: str
) -> None:
    # GIVEN a consumer whose dead-letter queue does not exist (deleted, say)
    gone = f"{queues.dlq_url}-gone"
    fn, _ns, metrics = process_order_function(queues, moto_endpoint, dead_letter_queue_url=gone)
    queues.send(order_placed("o-never-placed"))
    # WHEN the poison is received
    failed = queues.deliver(fn.handler)
    # THEN it is reported failed, as before: the queue retries it and redrives it in time
    assert len(failed) == 1
    assert queues.counts(queues.url) == 1
    assert queues.counts(queues.dlq_url) == 0
    assert metrics.counters["PermanentFailures"] == 1


def test_a_consumer_without_a_dead_letter_queue_lets_the_queue_retry(
    queues: Queues, moto_endpoint: str
) -> None:
    fn, _ns, _metrics = process_order_function(queues, moto_endpoint, dead_letter_queue_url=None)
    queues.send("not JSON")
    assert len(queues.deliver(fn.handler)) == 1
    assert queues.counts(queues.url) == 1
    assert queues.counts(queues.dlq_url) == 0
