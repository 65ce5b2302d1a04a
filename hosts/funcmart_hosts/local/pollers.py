"""Queue pollers and schedules: the Lambda event source mappings and EventBridge rules.

A poller long-polls its queue (briefly, so a stop takes effect within a couple of seconds),
hands up to BatchSize messages to the function as one SQS event, and deletes what succeeded:
everything when the handler returns, only the records not named in `batchItemFailures` when
the mapping has ReportBatchItemFailures, nothing when the handler raises. What is not deleted
comes back after the queue's visibility timeout, and the queue's own RedrivePolicy moves it to
the dead-letter queue after maxReceiveCount receives: redrive is the queue's job, not ours.

Like Lambda's event source mapping, which runs several pollers, a queue has `pollers` of them
(FUNCMART_POLLERS, at most the mapping's ScalingConfig.MaximumConcurrency): each takes its own
batch and hands it over, so that up to that many batches of one queue are in the function at
once, and one batch waiting on a slow dependency does not hold up the queue. A batch is
deleted only by the poller that received it, after its own invocation, so a consumer killed
mid-batch loses nothing, whichever poller held the batch: what it had not deleted comes back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from funcmart_hosts.gateway.events import scheduled_event
from funcmart_hosts.gateway.sqs import failed_message_ids, sqs_event
from funcmart_hosts.gateway.template import QueueSource, Schedule
from funcmart_hosts.local.resources import QueueRef
from funcmart_hosts.local.runtime import Invoker

log = logging.getLogger("local-platform")
SQS_MAX_RECEIVE = 10


def pollers_for(source: QueueSource, wanted: int) -> int:
    """Pollers for one queue: as many as wanted, at most the mapping's MaximumConcurrency."""
    return max(1, min(wanted, source.maximum_concurrency or wanted))


class QueuePoller(threading.Thread):
    def __init__(
        self,
        invoker: Invoker,
        function: str,
        source: QueueSource,
        queue: QueueRef,
        client: Any,
        *,
        region: str,
        wait_seconds: int,
        stop: threading.Event,
        pollers: int = 1,
    ) -> None:
        super().__init__(name=f"poll-{function}-{queue.logical_id}", daemon=True)
        self.invoker = invoker
        self.function = function
        self.source = source
        self.queue = queue
        self.client = client
        self.region = region
        self.wait_seconds = wait_seconds
        self.stop_event = stop
        self.pollers = max(1, pollers)
        self.batches = 0  # handler invocations so far (for tests and the status line)
        self._count = threading.Lock()

    def run(self) -> None:
        """This thread is the first poller; the others run beside it until the stop."""
        others = [
            threading.Thread(target=self._poll, name=f"{self.name}-{n}", daemon=True)
            for n in range(1, self.pollers)
        ]
        for poller in others:
            poller.start()
        self._poll()
        for poller in others:
            poller.join()

    def _poll(self) -> None:
        while not self.stop_event.is_set():
            try:
                messages = self.receive()
            except Exception as exc:
                log.warning("%s: receiving from %s failed: %s", self.name, self.queue.name, exc)
                self.stop_event.wait(1.0)
                continue
            if messages:
                self.process(messages)

    def receive(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages: one long poll, then (with a batching window or a batch
        size over SQS's 10) more receives until the batch is full or the window closes."""
        wanted = self.source.batch_size
        messages = self._receive(min(wanted, SQS_MAX_RECEIVE), self.wait_seconds)
        window_ends = time.monotonic() + self.source.batch_window_seconds
        while messages and len(messages) < wanted and not self.stop_event.is_set():
            more_wait = 0
            if self.source.batch_window_seconds:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                more_wait = max(1, min(int(remaining), self.wait_seconds))
            more = self._receive(min(wanted - len(messages), SQS_MAX_RECEIVE), more_wait)
            if not more and not self.source.batch_window_seconds:
                break
            messages.extend(more)
        return messages

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.client.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def process(self, messages: list[dict[str, Any]]) -> None:
        event = sqs_event(messages, self.queue.arn, self.region)
        ids = {m["MessageId"] for m in messages}
        with self._count:
            self.batches += 1
        try:
            result = self.invoker.invoke(self.function, event)
        except Exception:
            log.exception(
                "%s raised on a batch of %d from %s; the messages return after the visibility "
                "timeout",
                self.function,
                len(messages),
                self.queue.name,
            )
            return
        failed: set[str] = set()
        if self.source.report_batch_item_failures:
            reported = failed_message_ids(result, ids)
            if reported is None:
                log.error(
                    "%s returned an invalid batchItemFailures response; the whole batch of %d "
                    "counts as failed",
                    self.function,
                    len(messages),
                )
                return
            failed = reported
        done = [m for m in messages if m["MessageId"] not in failed]
        self._delete_processed(done)
        if failed:
            log.info(
                "%s: %d of %d messages from %s failed and return after the visibility timeout",
                self.function,
                len(failed),
                len(messages),
                self.queue.name,
            )

    def _delete_processed(self, messages: list[dict[str, Any]]) -> None:
        for i in range(0, len(messages), SQS_MAX_RECEIVE):
            chunk = messages[i : i + SQS_MAX_RECEIVE]
            entries = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)
            ]
            try:
                response = self.client.delete_message_batch(
                    QueueUrl=self.queue.url, Entries=entries
                )
            except Exception as exc:
                log.warning("%s: deleting processed messages failed: %s", self.name, exc)
                continue
            for failure in response.get("Failed") or []:
                log.warning("%s: could not delete a processed message: %s", self.name, failure)


class ScheduleTimer(threading.Thread):
    """Fires one Schedule event source at its rate (or at an override interval)."""

    def __init__(
        self,
        invoker: Invoker,
        function: str,
        schedule: Schedule,
        *,
        rule_arn: str,
        account_id: str,
        region: str,
        every: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"schedule-{function}-{schedule.name}", daemon=True)
        self.invoker = invoker
        self.function = function
        self.schedule = schedule
        self.rule_arn = rule_arn
        self.account_id = account_id
        self.region = region
        self.every = every
        self.stop_event = stop
        self.fired = 0

    def run(self) -> None:
        next_at = time.monotonic() + self.every
        while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
            self.fire()
            # A run longer than the interval delays the next one rather than piling them up.
            next_at = max(next_at + self.every, time.monotonic())

    def fire(self) -> None:
        if self.schedule.input is not None:
            event: Any = json.loads(self.schedule.input)
        else:
            event = scheduled_event(self.rule_arn, self.account_id, self.region)
        self.fired += 1
        try:
            self.invoker.invoke(self.function, event)
        except Exception:
            # EventBridge invokes asynchronously: Lambda would retry twice, then drop it.
            log.exception("%s raised on its schedule %s", self.function, self.schedule.expression)
