"""The queue side of every consumer: SQS batches with partial failures and retry backoff.

A consumer module gives `QueueFunction` one callable per message; this module parses the
batch, reports the records that failed (`batchItemFailures`, so only they are redelivered),
and pushes each failed record's next delivery out with exponential backoff. After the
queue's maxReceiveCount, SQS moves the record to its dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
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


def to_message(record: SQSRecord) -> QueueMessage:
    raw = record.raw_event
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


class QueueFunction:
    def __init__(self, deps: Container, on_message: Callable[[QueueMessage], object]) -> None:
        self._deps = deps
        self._on_message = on_message
        self._processor = BatchProcessor(
            event_type=EventType.SQS, raise_on_entire_batch_failure=False
        )
        self._queue_urls: dict[str, str] = {}
        self._observed = Observer("queue").wrap(self._handle)

    def _record(self, record: SQSRecord) -> object:
        message: QueueMessage | None = None
        try:
            message = to_message(record)
            correlate(message.correlation_id or None)
            outcome = self._on_message(message)
        except Exception as exc:
            logger.warning(
                "message failed; it will be retried",
                extra={
                    "messageId": record.message_id,
                    "receiveCount": message.receive_count if message else None,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            raise
        logger.info("message done", extra={"messageId": record.message_id, "outcome": outcome})
        return outcome

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The Lambda handler: one SQS batch in, the records that failed out."""
        return self._observed(event, context)

    def _handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
            logger.error("not an SQS event; nothing to do", extra={"event": str(event)[:500]})
            return {"batchItemFailures": []}
        try:
            result: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
                event=event,
                record_handler=self._record,
                processor=self._processor,
                context=context,
            )
            self._back_off(event, result.get("batchItemFailures", []))
            return result
        finally:
            self._deps.metrics.flush()

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
