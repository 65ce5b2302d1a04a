"""Publisher over SQS: one queue per event type.

`publish` sends at once. Inside `batched()` (a queue consumer's batch) events are collected
and sent when the block ends, up to ten per SendMessageBatch: one request instead of ten,
which SQS bills and a batch waits for. Either way a failed send is logged and counted, and
the order is left for ReconcileOrders, which re-publishes events of orders left open.

With tracing on, each event is published under a producer span of its own, and its message
carries that span's context as the `traceparent` (and `tracestate`) message attributes, taken
when `publish` is called, so an event sent later with its batch still names the record that
published it. The consumer's entry point continues the trace from there.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from funcmart.adapters import tracing
from funcmart.domain.errors import DependencyUnavailable
from funcmart.domain.orders import Event, event_to_dict

log = logging.getLogger(__name__)
SQS_BATCH = 10


def queue_url_of(client: Any, arn: str) -> str:
    """The URL of the SQS queue an ARN names (arn:aws:sqs:<region>:<account>:<name>)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn[:200]!r}")
    url: str = client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
    return url


class SqsPublisher:
    def __init__(self, client: Any, queue_urls: dict[str, str], metrics: Any = None) -> None:
        self._sqs = client
        self._urls = queue_urls
        self._metrics = metrics
        # Collecting, inside batched(): one list per invocation, so concurrent invocations of
        # one function (Knative threads, the local platform) never take each other's events.
        self._pending: ContextVar[list[tuple[Event, dict[str, str]]] | None] = ContextVar(
            "pending", default=None
        )

    def publish(self, event: Event) -> None:
        if not self._urls.get(event.type):
            raise DependencyUnavailable(f"no queue is configured for {event.type}")
        attributes = {
            "messaging.system": "aws_sqs",
            "messaging.destination.name": self._urls[event.type].rsplit("/", 1)[-1],
            "funcmart.order_id": event.order_id,
        }
        with tracing.producer_span(f"publish {event.type}", attributes, event.trace_context):
            trace = tracing.inject()
            pending = self._pending.get()
            if pending is not None:
                # list.append is atomic; records may run on several threads
                pending.append((event, trace))
                return
            try:
                self._sqs.send_message(QueueUrl=self._urls[event.type], **_message(event, trace))
            except (BotoCoreError, ClientError) as exc:
                raise DependencyUnavailable(f"could not publish {event.type}: {exc}") from exc

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Collect what is published in the block; send it, batched, when the block ends."""
        pending: list[tuple[Event, dict[str, str]]] = []
        token = self._pending.set(pending)
        try:
            yield
        finally:
            self._pending.reset(token)
            self._send_batches(pending)

    def _send_batches(self, events: list[tuple[Event, dict[str, str]]]) -> None:
        by_queue: dict[str, list[tuple[Event, dict[str, str]]]] = {}
        for event, trace in events:
            by_queue.setdefault(self._urls[event.type], []).append((event, trace))
        for url, queued in by_queue.items():
            for start in range(0, len(queued), SQS_BATCH):
                chunk = queued[start : start + SQS_BATCH]
                entries = [{"Id": str(n), **_message(*pair)} for n, pair in enumerate(chunk)]
                try:
                    answer = self._sqs.send_message_batch(QueueUrl=url, Entries=entries)
                    failed = [chunk[int(f["Id"])][0] for f in answer.get("Failed") or []]
                except (BotoCoreError, ClientError) as exc:
                    log.warning("could not publish %d events: %s", len(chunk), exc)
                    failed = [e for e, _ in chunk]
                if failed:
                    # Committed already: ReconcileOrders re-publishes orders left open.
                    log.warning(
                        "publish failed; the reconciler will retry",
                        extra={"orders": [e.order_id for e in failed]},
                    )
                    if self._metrics is not None:
                        self._metrics.incr("PublishFailures", len(failed))


def _message(event: Event, trace: dict[str, str] | None = None) -> dict[str, Any]:
    attributes = {
        "eventType": {"DataType": "String", "StringValue": event.type},
        "correlationId": {"DataType": "String", "StringValue": event.correlation_id or "-"},
    }
    for name, value in (trace or {}).items():  # traceparent, tracestate
        attributes[name] = {"DataType": "String", "StringValue": value}
    return {
        "MessageBody": json.dumps(event_to_dict(event), separators=(",", ":")),
        "MessageAttributes": attributes,
    }
