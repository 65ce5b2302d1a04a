"""Queue batches: records run concurrently (one at a time on FIFO queues), failures are
reported per record, and events published during a batch go out in SendMessageBatch calls."""

from __future__ import annotations

import threading
import time
from typing import Any

from funcmart.adapters.sqs import SqsPublisher
from funcmart.bootstrap import build
from funcmart.domain.orders import OrderPaid
from funcmart.entrypoints.queue import QueueFunction, QueueMessage
from funcmart.settings import Settings
from tests.fakes import FakeMetrics
from tests.support.events import sqs_event

ARN = "arn:aws:sqs:us-east-1:123456789012:orders"


def batch(count: int, arn: str = ARN) -> dict[str, Any]:
    return sqs_event(
        [f'{{"type":"OrderPaid","orderId":"o{n}","correlationId":"c{n}"}}' for n in range(count)],
        arn,
    )


class FakeSqs:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message", kwargs))
        return {}

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message_batch", kwargs))
        if self.fail:
            return {"Failed": [{"Id": e["Id"]} for e in kwargs["Entries"]]}
        return {"Successful": kwargs["Entries"]}

    def change_message_visibility(self, **kwargs: Any) -> None:
        self.calls.append(("change_message_visibility", kwargs))

    def get_queue_url(self, **_kwargs: Any) -> dict[str, str]:
        return {"QueueUrl": "https://queue"}


def function(on_message: Any, batch_concurrency: int = 10, **overrides: Any) -> QueueFunction:
    settings = Settings.load({}, table_name="t", batch_concurrency=batch_concurrency)
    deps = build(settings, metrics=FakeMetrics(), **overrides)
    return QueueFunction(deps, on_message)


def test_the_records_of_a_batch_run_at_the_same_time():
    # GIVEN a consumer whose every message waits 0.3 s (on a payment gateway, say)
    def slow(_message: QueueMessage) -> str:
        time.sleep(0.3)
        return "done"

    # WHEN a batch of ten arrives
    started = time.monotonic()
    answer = function(slow, sqs_client=FakeSqs()).handler(batch(10), None)
    # THEN all ten succeed in about the time of one
    assert answer == {"batchItemFailures": []}
    assert time.monotonic() - started < 1.5


def test_batches_handled_at_once_each_have_batch_concurrency_threads():
    # GIVEN a consumer with BATCH_CONCURRENCY 5 whose records each wait for nine others
    together = threading.Barrier(10, timeout=5)

    def waits_for_the_others(_message: QueueMessage) -> str:
        together.wait()  # BrokenBarrierError unless all ten records run at once
        return "done"

    consumer = function(waits_for_the_others, sqs_client=FakeSqs(), batch_concurrency=5)
    answers: list[dict[str, Any]] = []
    # WHEN a host hands it two batches of five at once (two pollers, or Knative's threads)
    threads = [
        threading.Thread(target=lambda: answers.append(consumer.handler(batch(5), None)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # THEN both batches' records ran at once: five threads for each batch, not five in all
    assert answers == [{"batchItemFailures": []}] * 2
    assert not together.broken


def test_a_batch_of_one_runs_on_the_invocations_own_thread():
    # GIVEN a consumer with BATCH_CONCURRENCY 10 (every Knative delivery is a batch of one)
    ran_on: list[int] = []

    def notes_its_thread(_message: QueueMessage) -> str:
        ran_on.append(threading.get_ident())
        return "done"

    consumer = function(notes_its_thread, sqs_client=FakeSqs())
    # WHEN a batch of one arrives, then a batch of two
    assert consumer.handler(batch(1), None) == {"batchItemFailures": []}
    assert consumer.handler(batch(2), None) == {"batchItemFailures": []}
    # THEN the one record ran where the invocation did, not handed to a pool's thread; the
    # two still ran on the batch's pool
    assert ran_on[0] == threading.get_ident()
    assert threading.get_ident() not in ran_on[1:]


def test_records_of_a_fifo_queue_run_one_at_a_time_in_order():
    seen: list[str] = []
    running = threading.Semaphore(1)

    def in_order(message: QueueMessage) -> str:
        assert running.acquire(blocking=False), "two records ran at once"
        try:
            seen.append(message.message_id)
            time.sleep(0.01)
        finally:
            running.release()
        return "done"

    fifo = "arn:aws:sqs:us-east-1:123456789012:orders.fifo"
    function(in_order, sqs_client=FakeSqs()).handler(batch(5, fifo), None)
    assert seen == [f"m{n}" for n in range(5)]


def test_only_the_records_that_failed_are_reported_in_record_order():
    def odd_ones_fail(message: QueueMessage) -> str:
        if int(message.message_id[1:]) % 2:
            raise RuntimeError("boom")
        return "done"

    sqs = FakeSqs()
    answer = function(odd_ones_fail, sqs_client=sqs).handler(batch(6), None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"m{n}"} for n in (1, 3, 5)]}
    assert [c for c, _ in sqs.calls].count("change_message_visibility") == 3


def test_events_published_during_a_batch_go_out_ten_to_a_request_when_it_is_done():
    sqs = FakeSqs()
    publisher = SqsPublisher(sqs, {"OrderPaid": "https://paid"}, FakeMetrics())

    def publish(message: QueueMessage) -> str:
        assert not sqs.calls, "sent before the batch was done"
        publisher.publish(OrderPaid(message.message_id, "c"))
        return "published"

    function(publish, sqs_client=sqs, publisher=publisher).handler(batch(10), None)
    sqs_calls = [c for c in sqs.calls if c[0].startswith("send")]
    assert [c for c, _ in sqs_calls] == ["send_message_batch"]
    assert len(sqs_calls[0][1]["Entries"]) == 10


def test_outside_a_batch_an_event_is_sent_at_once():
    sqs = FakeSqs()
    SqsPublisher(sqs, {"OrderPaid": "https://paid"}).publish(OrderPaid("o1", "c"))
    assert [c for c, _ in sqs.calls] == ["send_message"]


def test_a_batch_send_that_fails_is_counted_and_left_to_the_reconciler():
    metrics = FakeMetrics()
    publisher = SqsPublisher(FakeSqs(fail=True), {"OrderPaid": "https://paid"}, metrics)
    with publisher.batched():
        for n in range(12):
            publisher.publish(OrderPaid(f"o{n}", "c"))
    assert metrics.counters["PublishFailures"] == 12


def test_an_sqs_batch_answer_never_names_permanent_failures():
    """Lambda reads `batchItemFailures` only; the extra key is for hosts that deliver records
    from elsewhere (Knative), so an SQS batch's answer never carries it."""
    from funcmart.domain.errors import NotFound

    def unknown(_message: QueueMessage) -> str:
        raise NotFound("no such order")

    # a consumer without a dead-letter queue: the poison is failed, for SQS to retry
    answer = function(unknown, sqs_client=FakeSqs()).handler(batch(2), None)
    assert set(answer) == {"batchItemFailures"}
    assert len(answer["batchItemFailures"]) == 2


def test_a_dead_letter_keeps_the_body_and_attributes_and_names_the_failure():
    from funcmart.entrypoints.queue import dead_letter

    record = sqs_event(['{"type":"OrderPaid"}'], ARN)["Records"][0]
    record["messageAttributes"] = {
        "correlationId": {"stringValue": "c-1", "dataType": "String"},
        "blob": {"binaryValue": "AAE=", "dataType": "Binary"},
        "broken": {"binaryValue": "not base64!", "dataType": "Binary"},
        "failure": {"stringValue": "an older one", "dataType": "String"},
    }
    args = dead_letter(record, "NotFound: no such order", "https://dlq")
    assert args == {
        "QueueUrl": "https://dlq",
        "MessageBody": '{"type":"OrderPaid"}',
        "MessageAttributes": {
            "correlationId": {"DataType": "String", "StringValue": "c-1"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            "failure": {"DataType": "String", "StringValue": "NotFound: no such order"},
        },
    }
    quoted = dead_letter(record, "InvalidRequest: \x00\ud800 quoted", "https://dlq")
    assert quoted["MessageAttributes"]["failure"]["StringValue"] == "InvalidRequest: ?? quoted"
    fifo = dead_letter(record, "x", "https://dlq.fifo")
    assert fifo["MessageDeduplicationId"] == record["messageId"]
    assert fifo["MessageGroupId"]


class Context:
    """A Lambda context with `seconds` left from now."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def test_a_batch_answers_within_its_time_whatever_its_size():
    # GIVEN a consumer whose records take 20 ms each, one at a time, with 2 s left
    done: list[str] = []

    def slow(message: QueueMessage) -> str:
        time.sleep(0.02)
        done.append(message.message_id)
        return "done"

    sqs = FakeSqs()
    consumer = function(slow, sqs_client=sqs, batch_concurrency=1)
    # WHEN a batch that would take 20 s arrives
    started = time.monotonic()
    answer = consumer.handler(batch(1000), Context(2.0))
    took = time.monotonic() - started
    # THEN it answers within its time, having started records only while time was left
    assert took < 2.0
    assert 10 <= len(done) < 1000
    # AND every record not done is reported failed, in the batch's order, for redelivery
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [f"m{n}" for n in range(1000) if f"m{n}" not in done]
    # AND the records never started are not pushed back one call each
    assert not [c for c in sqs.calls if c[0] == "change_message_visibility"]
