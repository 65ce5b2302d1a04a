"""The queue side of every consumer: SQS batches with partial failures and retry backoff.

A consumer module gives `QueueFunction` one callable per message; this module parses the
batch, reports the records that failed (`batchItemFailures`, so only they are redelivered),
and pushes each failed record's next delivery out with exponential backoff. After the
queue's maxReceiveCount, SQS moves the record to its dead-letter queue.

The records of one batch are independent, so they run concurrently (BATCH_CONCURRENCY
threads, 10 by default; one for FIFO queues, whose order matters): each spends most of its
time waiting on DynamoDB, and a batch then takes about as long as its slowest record, not
the sum of them. Events the records publish are sent when the batch is done, ten to a
request, where the publisher can batch (SQS).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from funcmart.domain.errors import InvalidRequest
from funcmart.domain.orders import Event, event_from_dict
from funcmart.observability import Observer, correlate

if TYPE_CHECKING:
    from funcmart.bootstrap import Container

logger = Logger(service="funcmart")
E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    body: str
    correlation_id: str
    receive_count: int
    source: str  # the queue's name

    def event(self) -> Event:
        """The order event this message carries; InvalidRequest if it carries none."""
        try:
            data = json.loads(self.body)
        except ValueError:
            data = None
        return event_from_dict(data)

    def event_of(self, kind: type[E]) -> E:
        """The event, which must be a `kind`; InvalidRequest for anything else."""
        event = self.event()
        if not isinstance(event, kind):
            raise InvalidRequest(f"expected {kind.__name__}, got {event.type}")
        return event


def to_message(raw: dict[str, Any]) -> QueueMessage:
    """A message from one record of an SQS event, as Lambda delivers it."""
    attrs = raw.get("messageAttributes") or {}
    cid = (attrs.get("correlationId") or {}).get("stringValue") or ""
    body = raw.get("body") or ""
    if not cid:
        try:
            parsed = json.loads(body)
            cid = str(parsed.get("correlationId") or "") if isinstance(parsed, dict) else ""
        except ValueError:
            cid = ""
    try:
        receives = int((raw.get("attributes") or {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        receives = 1
    return QueueMessage(
        message_id=str(raw.get("messageId", "")),
        body=body,
        correlation_id=str(cid)[:128],
        receive_count=receives,
        source=str(raw.get("eventSourceARN") or "").rsplit(":", 1)[-1],
    )


class ConcurrentBatchProcessor(BatchProcessor):
    """Powertools' SQS batch processor, running the records of a batch on a thread pool.

    Success and failure bookkeeping, `batchItemFailures` and the response stay Powertools'
    own; only the loop over the records is concurrent."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self._pool = pool

    def process(self) -> list[tuple[Any, ...]]:
        # Each record runs in a copy of the invocation's context, so what the invocation set
        # up (the publisher's batch, for one) reaches the pool's threads.
        contexts = [contextvars.copy_context() for _ in self.records]
        return list(
            self._pool.map(
                lambda pair: pair[0].run(self._process_record, pair[1]),
                zip(contexts, self.records, strict=True),
            )
        )


class QueueFunction:
    def __init__(self, deps: Container, on_message: Callable[[QueueMessage], object]) -> None:
        self._deps = deps
        self._on_message = on_message
        self._concurrency = max(1, deps.settings.batch_concurrency)
        # Built at cold start; its threads start with the first batch and live while warm.
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="record")
        self._queue_urls: dict[str, str] = {}
        self._observed = Observer("queue").wrap(self._handle)

    def _processor(self, fifo: bool) -> BatchProcessor | SqsFifoPartialProcessor:
        """A processor for one batch: it keeps the batch's bookkeeping, so concurrent
        invocations (on Knative or the local platform) each get their own."""
        if fifo:  # one at a time, and the first failure fails the rest, so order holds
            fifo_processor = SqsFifoPartialProcessor()
            fifo_processor.raise_on_entire_batch_failure = False
            return fifo_processor
        if self._concurrency > 1:
            return ConcurrentBatchProcessor(self._pool)
        return BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def _record(self, record: SQSRecord, keys: dict[str, Any]) -> object:
        """Run one record under the invocation's log keys (it may be on another thread).
        A failure is logged and raised, for the batch processor to report."""
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**keys)
        raw = record.raw_event
        message: QueueMessage | None = None
        try:
            message = to_message(raw)
            correlate(message.correlation_id or None)
            outcome = self._on_message(message)
        except Exception as exc:
            logger.warning(
                "message failed; it will be retried",
                extra={
                    "messageId": raw.get("messageId"),
                    "receiveCount": message.receive_count if message else None,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            raise
        else:
            logger.info(
                "message done", extra={"messageId": raw.get("messageId"), "outcome": outcome}
            )
            return outcome
        finally:
            correlate(None)

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The Lambda handler: one SQS batch in, the records that failed out."""
        return self._observed(event, context)

    def _handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
            logger.error("not an SQS event; nothing to do", extra={"event": str(event)[:500]})
            return {"batchItemFailures": []}
        records: list[Any] = event["Records"]
        fifo = any(
            str((r.get("eventSourceARN") if isinstance(r, dict) else "") or "").endswith(".fifo")
            for r in records
        )
        keys = logger.thread_safe_get_current_keys()
        try:
            with self._batched_publishing():
                result = process_partial_response(
                    event=event,
                    record_handler=lambda record: self._record(record, keys),
                    processor=self._processor(fifo),
                    context=context,
                )
            failed = {str(f["itemIdentifier"]) for f in result["batchItemFailures"]}
            # in the batch's order, whatever order the threads finished in
            failures = [
                {"itemIdentifier": mid}
                for mid in (str(r.get("messageId", "")) for r in records if isinstance(r, dict))
                if mid in failed
            ]
            self._back_off(event, failures)
            return {"batchItemFailures": failures}
        finally:
            self._deps.flush_metrics()

    @contextlib.contextmanager
    def _batched_publishing(self) -> Iterator[None]:
        """Events published while the batch runs go out when it is done, where the
        publisher batches; a publisher this function never built is not built for it."""
        publisher = self._deps.built("publisher")
        batched = getattr(publisher, "batched", None)
        if batched is None:
            yield
            return
        with batched():
            yield

    def _back_off(self, event: dict[str, Any], failures: list[dict[str, str]]) -> None:
        """Delay the next delivery of each failed record: base * 2^(receives-1) seconds.

        Only SQS records: on Knative the broker's delivery policy does the backing off."""
        failed = {f["itemIdentifier"] for f in failures}
        s = self._deps.settings
        for rec in event["Records"]:
            if rec.get("messageId") not in failed or rec.get("eventSource") != "aws:sqs":
                continue
            receives = int((rec.get("attributes") or {}).get("ApproximateReceiveCount", 1))
            delay = min(
                s.retry_backoff_max_seconds, s.retry_backoff_base_seconds * 2 ** (receives - 1)
            )
            try:
                self._deps.sqs_client.change_message_visibility(
                    QueueUrl=self._queue_url(rec["eventSourceARN"]),
                    ReceiptHandle=rec["receiptHandle"],
                    VisibilityTimeout=int(delay),
                )
            except Exception as exc:  # the queue's own visibility timeout applies instead
                logger.warning("could not set retry backoff", extra={"error": str(exc)})

    def _queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            parts = arn.split(":")
            self._queue_urls[arn] = self._deps.sqs_client.get_queue_url(
                QueueName=parts[5], QueueOwnerAWSAccountId=parts[4]
            )["QueueUrl"]
        return self._queue_urls[arn]
