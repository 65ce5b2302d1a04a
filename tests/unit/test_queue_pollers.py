"""The local platform's queue pollers against an in-memory queue: several batches of one queue
in the function at once (at most `pollers`), processed messages deleted ten to a request,
failed ones left for the queue to deliver again."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from funcmart.settings import SettingsError
from funcmart_hosts.gateway.template import QueueSource, parse
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.pollers import QueuePoller, pollers_for
from funcmart_hosts.local.resources import QueueRef
from funcmart_hosts.local.runtime import Invoker

QUEUE = QueueRef("Jobs", "jobs", "http://sqs.local/jobs", "arn:aws:sqs:us-east-1:1:jobs")


class FakeQueue:
    """SQS as far as a poller sees it: visible messages are received (and then invisible
    until deleted or `expire()`d), deletes go by receipt handle; every call is recorded."""

    def __init__(self, bodies: list[str]) -> None:
        self._lock = threading.Lock()
        self.visible = [{"MessageId": f"m{n}", "Body": b} for n, b in enumerate(bodies)]
        self.in_flight: dict[str, dict[str, Any]] = {}  # receipt handle -> message
        self.receives: dict[str, int] = {}
        self.calls: list[tuple[str, int]] = []  # (action, entries)

    def receive_message(self, **kw: Any) -> dict[str, Any]:
        with self._lock:
            taken = self.visible[: kw["MaxNumberOfMessages"]]
            del self.visible[: len(taken)]
            out = []
            for m in taken:
                self.receives[m["MessageId"]] = self.receives.get(m["MessageId"], 0) + 1
                handle = uuid.uuid4().hex
                self.in_flight[handle] = m
                count = str(self.receives[m["MessageId"]])
                out.append(
                    {**m, "ReceiptHandle": handle, "Attributes": {"ApproximateReceiveCount": count}}
                )
            self.calls.append(("ReceiveMessage", len(out)))
        if not out:
            time.sleep(0.01)  # a short "long poll"
        return {"Messages": out}

    def delete_message_batch(self, **kw: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("DeleteMessageBatch", len(kw["Entries"])))
            for entry in kw["Entries"]:
                self.in_flight.pop(entry["ReceiptHandle"])
        return {"Successful": [{"Id": e["Id"]} for e in kw["Entries"]], "Failed": []}

    def delete_message(self, **kw: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(("DeleteMessage", 1))
            self.in_flight.pop(kw["ReceiptHandle"])
        return {}

    def expire(self) -> None:
        """The visibility timeout of every message in flight runs out."""
        with self._lock:
            self.visible += list(self.in_flight.values())
            self.in_flight.clear()

    def empty(self) -> bool:
        with self._lock:
            return not self.visible and not self.in_flight

    def settled_with(self, in_flight: int) -> bool:
        """Nothing left to receive and `in_flight` messages received and not deleted: read
        under the lock, so a receive half-way through its messages is never seen."""
        with self._lock:
            return not self.visible and len(self.in_flight) == in_flight


class Function:
    """A loaded function for the Invoker: `handler(event, context)` calls `on_batch`."""

    def __init__(self, on_batch: Callable[[dict[str, Any]], Any]) -> None:
        self.spec = type("Spec", (), {"memory_size": 128, "timeout": 30})()
        self.name = self.arn = "Worker"
        self._on_batch = on_batch

    def ensure_loaded(self) -> Callable[[dict[str, Any], Any], Any]:
        return lambda event, _context: self._on_batch(event)


def source(batch_size: int, partial: bool = True, cap: int | None = None) -> QueueSource:
    return QueueSource("Jobs", batch_size, 0, partial, cap)


@contextlib.contextmanager
def running(
    queue: FakeQueue, on_batch: Callable[[dict[str, Any]], Any], batch_size: int, pollers: int
) -> Iterator[QueuePoller]:
    stop = threading.Event()
    invoker = Invoker({"Worker": Function(on_batch)})  # type: ignore[dict-item]
    poller = QueuePoller(
        invoker,
        "Worker",
        source(batch_size),
        QUEUE,
        queue,
        region="us-east-1",
        wait_seconds=0,
        stop=stop,
        pollers=pollers,
    )
    poller.start()
    try:
        yield poller
    finally:
        stop.set()
        poller.join(10)
        assert not poller.is_alive()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Concurrency:
    """How many batches are in the function at once, at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self.now -= 1


def test_pollers_hand_several_batches_of_one_queue_to_the_function_at_once():
    # GIVEN three messages and a function whose batches each wait for two others to arrive
    queue = FakeQueue(["a", "b", "c"])
    together = threading.Barrier(3, timeout=5)

    def handler(_event: dict[str, Any]) -> dict[str, Any]:
        together.wait()  # BrokenBarrierError (the batch fails) unless three run at once
        return {"batchItemFailures": []}

    # WHEN three pollers take batches of one
    with running(queue, handler, batch_size=1, pollers=3):
        # THEN the three batches run at once, and every message is done and deleted
        wait_for(queue.empty, "every message deleted")
    assert not together.broken
    assert all(n == 1 for n in queue.receives.values())


def test_never_more_batches_at_once_than_pollers():
    queue = FakeQueue([str(n) for n in range(12)])
    concurrency = Concurrency()

    def handler(_event: dict[str, Any]) -> dict[str, Any]:
        with concurrency:
            time.sleep(0.05)
        return {"batchItemFailures": []}

    with running(queue, handler, batch_size=2, pollers=2):
        wait_for(queue.empty, "every message deleted")
    assert concurrency.most == 2


def test_one_failure_in_a_batch_the_rest_deleted_in_one_request_the_failed_one_redelivered():
    # GIVEN ten messages, one of which fails on its first delivery
    queue = FakeQueue(["ok"] * 9 + ["flaky"])
    deliveries: list[list[str]] = []

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        deliveries.append([r["body"] for r in event["Records"]])
        failed = [
            {"itemIdentifier": r["messageId"]}
            for r in event["Records"]
            if r["body"] == "flaky" and r["attributes"]["ApproximateReceiveCount"] == "1"
        ]
        return {"batchItemFailures": failed}

    with running(queue, handler, batch_size=10, pollers=2):
        # WHEN the batch is done
        wait_for(lambda: queue.settled_with(1), "the nine deleted")
        # THEN the nine went in one DeleteMessageBatch and the failed one was not deleted
        assert [c for c in queue.calls if c[0].startswith("Delete")] == [("DeleteMessageBatch", 9)]
        assert [m["Body"] for m in queue.in_flight.values()] == ["flaky"]
        # AND when its visibility timeout runs out it comes back, alone, and is done
        queue.expire()
        wait_for(queue.empty, "the failed one done on its second delivery")
    assert deliveries[-1] == ["flaky"]
    assert queue.receives["m9"] == 2


def test_a_batch_that_raises_is_not_deleted_while_the_other_pollers_go_on():
    queue = FakeQueue(["boom", "ok", "ok", "ok"])

    def handler(event: dict[str, Any]) -> dict[str, Any]:
        if event["Records"][0]["body"] == "boom":
            raise RuntimeError("the function crashed")
        return {"batchItemFailures": []}

    with running(queue, handler, batch_size=1, pollers=2):
        wait_for(lambda: queue.settled_with(1), "the others done")
        assert [m["Body"] for m in queue.in_flight.values()] == ["boom"]


def test_pollers_per_queue_are_capped_by_the_mappings_maximum_concurrency():
    assert pollers_for(source(10), 4) == 4
    assert pollers_for(source(10, cap=2), 4) == 2
    assert pollers_for(source(10, cap=8), 4) == 4


def test_the_template_gives_the_mappings_maximum_concurrency():
    tpl = parse(
        {
            "Resources": {
                "Jobs": {"Type": "AWS::SQS::Queue"},
                "Worker": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {
                        "Handler": "worker.handler",
                        "Events": {
                            "Jobs": {
                                "Type": "SQS",
                                "Properties": {
                                    "Queue": "Jobs",
                                    "ScalingConfig": {"MaximumConcurrency": 3},
                                },
                            }
                        },
                    },
                },
            }
        }
    )
    assert tpl.functions["Worker"].queues[0].maximum_concurrency == 3


@pytest.mark.parametrize("value", ["0", "65", "x"])
def test_a_pollers_setting_out_of_range_is_refused(value: str):
    with pytest.raises(SettingsError):
        LocalSettings.load({"FUNCMART_POLLERS": value})


def test_the_pollers_setting_comes_from_the_environment():
    assert LocalSettings.load({"FUNCMART_POLLERS": "4"}).pollers == 4
