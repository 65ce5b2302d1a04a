"""The queue side of every consumer: SQS batches with partial failures and retry backoff.

A consumer module gives `QueueFunction` one callable per message; this module parses the
batch, reports the records that failed (`batchItemFailures`, so only they are redelivered),
and pushes each failed record's next delivery out with exponential backoff. After the
queue's maxReceiveCount, SQS moves the record to its dead-letter queue.

Errors are mapped once, here. A transient failure (any exception that is not a domain
error, TransientFailure, DependencyUnavailable) is retried as above. A permanent one (a
domain error no retry can fix: an unreadable message, an unknown order, a refused
transition) is counted (PermanentFailures) and dead-lettered at once, without spending the
retry budget: on SQS the consumer sends the record, body and message attributes, with a
`failure` attribute naming why, to its own dead-letter queue (DEAD_LETTER_QUEUE_URL) and
reports it processed; if that send fails, or the consumer has no dead-letter queue, the
record is reported failed and retried as a transient failure would be. Records a host
delivered from elsewhere (Knative) are reported failed and also named under
`permanentFailures` in the answer, so the host can refuse them for good; an SQS batch's
answer never carries that key.

The records of one batch are independent, so they run concurrently (BATCH_CONCURRENCY
threads, 10 by default; one for FIFO queues, whose order matters): each spends most of its
time waiting on DynamoDB, and a batch then takes about as long as its slowest record, not
the sum of them. Each batch in progress has threads of its own: a host that runs several
batches of one function at once in one process (the local platform's pollers, Knative) gets
BATCH_CONCURRENCY per batch, as Lambda's instances each have theirs. A batch of one record (each
CloudEvent a Knative broker delivers) runs on the invocation's own thread. Events the records
publish are sent when the batch is done, ten to a request, where the publisher can batch
(SQS).

A batch answers within its invocation's time whatever its size: a record is started only
while more than a fifth of the time the invocation had at its start is left (at most
RESERVE_MAX_SECONDS kept back), for the records in flight, dead-lettering and publishing to
finish in; the records not started are reported failed, without a backoff and without a
log line each, and come back once the queue's visibility timeout passes.

A consumer of dead-letter queues (`acknowledge_permanent`) acknowledges a record it can never
act on (no body, not an event, nesting no parser follows): logged in full at error level,
counted (`DeadLettersUnactionable`) and reported processed, so it does not go round between
the queue and the function until the queue's retention drops it.

Any record shape gets an answer Lambda accepts: every field of a record is read defensively,
a malformed record fails alone (reported by its messageId), and a record without a usable
messageId fails the whole batch on purpose (an empty itemIdentifier, which Lambda treats as
a complete failure), logged, with nothing processed: a record the answer cannot name would
otherwise count as done.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import json
import threading
import time
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

from funcmart.adapters import tracing
from funcmart.adapters.sqs import queue_url_of
from funcmart.domain.errors import (
    DependencyUnavailable,
    DomainError,
    InvalidRequest,
    TransientFailure,
)
from funcmart.domain.orders import Event, event_from_dict
from funcmart.domain.retries import backoff_seconds
from funcmart.observability import Observer, correlate, trace_in_logs

if TYPE_CHECKING:
    from funcmart.bootstrap import Container

logger = Logger(service="funcmart")
E = TypeVar("E", bound=Event)
# The message attribute naming why a record was dead-lettered without retries.
FAILURE_ATTRIBUTE = "failure"
# SQS takes at most 10 message attributes per message.
MAX_MESSAGE_ATTRIBUTES = 10
# Records start only while more than this share of the invocation's time is left ...
RESERVE_SHARE = 0.2
# ... and never more than this many seconds are kept back.
RESERVE_MAX_SECONDS = 10.0


class NotStarted(TransientFailure):
    """A record left for a later delivery: the invocation's time was nearly up."""


def start_deadline(context: Any) -> float | None:
    """The monotonic time after which no record of the batch starts; None without a context
    that knows its remaining time (a test calling the handler directly)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        seconds = float(remaining()) / 1000
    except (TypeError, ValueError):
        return None
    reserve = min(RESERVE_MAX_SECONDS, seconds * RESERVE_SHARE)
    return time.monotonic() + seconds - reserve


def is_permanent(exc: BaseException) -> bool:
    """True for a failure no retry can fix: a domain error that is not a transient one.
    Anything else (a timeout, a throttle, a bug) is retried, then dead-lettered by SQS."""
    return isinstance(exc, DomainError) and not isinstance(
        exc, TransientFailure | DependencyUnavailable
    )


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
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            data = None
        return event_from_dict(data)

    def event_of(self, kind: type[E]) -> E:
        """The event, which must be a `kind`; InvalidRequest for anything else."""
        event = self.event()
        if not isinstance(event, kind):
            raise InvalidRequest(f"expected {kind.__name__}, got {event.type}")
        return event


def to_message(raw: dict[str, Any]) -> QueueMessage:
    """A message from one record of an SQS event, as Lambda delivers it. Every field is
    read defensively; InvalidRequest when the record carries no text body."""
    body = raw.get("body")
    if not isinstance(body, str):
        raise InvalidRequest("the record's body is not a string")
    return QueueMessage(
        message_id=message_id_of(raw) or "",
        body=body,
        correlation_id=_correlation_id(raw, body)[:128],
        receive_count=receive_count(raw),
        source=_text(raw.get("eventSourceARN")).rsplit(":", 1)[-1],
    )


def message_id_of(record: Any) -> str | None:
    """The record's messageId, when it has one a batch response can name."""
    mid = record.get("messageId") if isinstance(record, dict) else None
    return mid if isinstance(mid, str) and mid.strip() else None


def receive_count(record: dict[str, Any]) -> int:
    """ApproximateReceiveCount, 1 when absent or not a positive number."""
    attrs = record.get("attributes")
    raw = attrs.get("ApproximateReceiveCount", 1) if isinstance(attrs, dict) else 1
    try:
        return max(1, int(raw))
    except (TypeError, ValueError, OverflowError):
        return 1


def _correlation_id(raw: dict[str, Any], body: str) -> str:
    """The correlationId message attribute, else the body's correlationId field."""
    attrs = raw.get("messageAttributes")
    attr = attrs.get("correlationId") if isinstance(attrs, dict) else None
    cid = attr.get("stringValue") if isinstance(attr, dict) else None
    if isinstance(cid, str) and cid:
        return cid
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    return _text(parsed.get("correlationId")) if isinstance(parsed, dict) else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


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


class RecordPools:
    """Thread pools for the records of the batches in progress, one pool per batch, kept
    while warm: a pool is lent to one batch and comes back when the batch is done. On Lambda
    (one batch at a time per instance) there is only ever one."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._free: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lend(self) -> Iterator[ThreadPoolExecutor]:
        with self._lock:
            pool = self._free.pop() if self._free else None
        if pool is None:  # its threads start with its first records
            pool = ThreadPoolExecutor(self._threads, thread_name_prefix="record")
        try:
            yield pool
        finally:
            with self._lock:
                self._free.append(pool)


class QueueFunction:
    def __init__(
        self,
        deps: Container,
        on_message: Callable[[QueueMessage], object],
        *,
        acknowledge_permanent: bool = False,
    ) -> None:
        """`acknowledge_permanent`: a record that fails for good is logged, counted and
        acknowledged, not dead-lettered (for the consumer of the dead-letter queues)."""
        self._deps = deps
        self._on_message = on_message
        self._acknowledge_permanent = acknowledge_permanent
        self._concurrency = max(1, deps.settings.batch_concurrency)
        self._pools = RecordPools(self._concurrency)
        self._queue_urls: dict[str, str] = {}
        self._observed = Observer("queue").wrap(self._handle)

    @contextlib.contextmanager
    def _processor(
        self, fifo: bool, size: int
    ) -> Iterator[BatchProcessor | SqsFifoPartialProcessor]:
        """A processor for one batch of `size` records: it keeps the batch's bookkeeping, so
        concurrent invocations (on Knative or the local platform) each get their own. A batch
        of one runs on the invocation's own thread: a pool would only hand its one record to
        another thread and wait for it (every Knative delivery is such a batch)."""
        if fifo:  # one at a time, and the first failure fails the rest, so order holds
            fifo_processor = SqsFifoPartialProcessor()
            fifo_processor.raise_on_entire_batch_failure = False
            yield fifo_processor
        elif self._concurrency > 1 and size > 1:
            with self._pools.lend() as pool:
                yield ConcurrentBatchProcessor(pool)
        else:
            yield BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def _record(
        self,
        record: SQSRecord,
        keys: dict[str, Any],
        permanent: dict[str, str],
        deadline: float | None,
        not_started: set[str],
    ) -> object:
        """Run one record under the invocation's log keys (it may be on another thread).
        A failure is logged and raised, for the batch processor to report; a permanent one
        is also noted in `permanent` (messageId -> why), to be dead-lettered at once. Past
        the `deadline` the record is not started (NotStarted, noted in `not_started`, not
        logged one by one)."""
        if deadline is not None and time.monotonic() >= deadline:
            not_started.add(str(record.raw_event["messageId"]))
            raise NotStarted("not started: the invocation's time was nearly up")
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(**keys)
        raw = record.raw_event
        if not tracing.enabled():
            return self._run_record(raw, permanent)
        # The record's own trace (the order's) continues here; the batch is linked.
        parent = tracing.extract(trace_carrier(raw))
        batch = tracing.extract_span_context(tracing.inject()) if parent is not None else None
        source = _text(raw.get("eventSourceARN")).rsplit(":", 1)[-1] or "queue"
        attributes = {
            "messaging.system": _messaging_system(raw),
            "messaging.destination.name": source,
            "messaging.message.id": str(raw.get("messageId", "")),
            "messaging.operation.type": "process",
            "faas.name": str(keys.get("function_name") or ""),
        }
        with tracing.span(
            f"process {source}", "consumer", attributes, parent=parent, links=[batch]
        ):
            trace_in_logs()
            return self._run_record(raw, permanent)

    def _run_record(self, raw: dict[str, Any], permanent: dict[str, str]) -> object:
        message: QueueMessage | None = None
        try:
            message = to_message(raw)
            correlate(message.correlation_id or None)
            outcome = self._on_message(message)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            for_good = is_permanent(exc)
            if for_good:
                permanent[str(raw["messageId"])] = error[:1000]
            logger.warning(
                "message failed for good; it is dead-lettered"
                if for_good
                else "message failed; it will be retried",
                extra={
                    "messageId": raw.get("messageId"),
                    "receiveCount": message.receive_count if message else None,
                    "error": error,
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
        if not records:  # Powertools refuses an empty batch; there is nothing to do
            return {"batchItemFailures": []}
        without_id = sum(1 for r in records if message_id_of(r) is None)
        if without_id:
            # A record the response cannot name would count as done: the whole batch is
            # failed instead (an empty itemIdentifier), so Lambda redelivers every record.
            logger.error(
                "records without a usable messageId; the whole batch fails, none is processed",
                extra={"records": len(records), "withoutMessageId": without_id},
            )
            return {"batchItemFailures": [{"itemIdentifier": ""}]}
        if not tracing.enabled():
            return self._batch(event, context, records)
        name, attributes, parent, links = _batch_span(records)
        attributes["faas.name"] = str(getattr(context, "function_name", None) or "")
        with tracing.span(name, "consumer", attributes, parent=parent, links=links):
            trace_in_logs()
            return self._batch(event, context, records)

    def _batch(self, event: dict[str, Any], context: Any, records: list[Any]) -> dict[str, Any]:
        fifo = any(_text(r.get("eventSourceARN")).endswith(".fifo") for r in records)
        keys = logger.thread_safe_get_current_keys()
        permanent: dict[str, str] = {}  # messageId -> why; written by the records' threads
        deadline = start_deadline(context)
        not_started: set[str] = set()  # written by the records' threads
        try:
            with self._batched_publishing(), self._processor(fifo, len(records)) as processor:
                result = process_partial_response(
                    event=event,
                    record_handler=lambda record: self._record(
                        record, keys, permanent, deadline, not_started
                    ),
                    processor=processor,
                    context=context,
                )
            failed = {str(f["itemIdentifier"]) for f in result["batchItemFailures"]}
            if permanent:
                self._deps.metrics.incr("PermanentFailures", len(permanent))
                if self._acknowledge_permanent:
                    failed -= self._acknowledge(records, permanent)
                else:
                    failed -= self._dead_letter(records, permanent)
            if not_started:
                self._deps.metrics.incr("RecordsNotStarted", len(not_started))
                logger.warning(
                    "the invocation's time was nearly up: records left for a later delivery",
                    extra={"records": len(records), "notStarted": len(not_started)},
                )
            # in the batch's order, whatever order the threads finished in
            failures = [
                {"itemIdentifier": r["messageId"]} for r in records if r["messageId"] in failed
            ]
            self._back_off(event, [f for f in failures if f["itemIdentifier"] not in not_started])
            answer: dict[str, Any] = {"batchItemFailures": failures}
            refused = [
                {"itemIdentifier": r["messageId"], "reason": permanent[r["messageId"]]}
                for r in records
                if r["messageId"] in failed
                and r["messageId"] in permanent
                and r.get("eventSource") != "aws:sqs"
            ]
            if refused:  # for the host that delivered them (never in an SQS batch's answer)
                answer["permanentFailures"] = refused
            return answer
        finally:
            self._deps.flush_metrics()

    def _acknowledge(self, records: list[Any], permanent: dict[str, str]) -> set[str]:
        """Acknowledge the records no retry can make actionable: each logged in full (the
        archive a person reads), counted, and reported processed."""
        done: set[str] = set()
        for rec in records:
            mid = rec["messageId"]
            if mid not in permanent:
                continue
            logger.error(
                "message can never be acted on; acknowledged",
                extra={"messageId": mid, "failure": permanent[mid], "record": _archived(rec)},
            )
            done.add(mid)
        self._deps.metrics.incr("DeadLettersUnactionable", len(done))
        return done

    def _dead_letter(self, records: list[Any], permanent: dict[str, str]) -> set[str]:
        """Send each SQS record that failed for good to this consumer's dead-letter queue;
        the ids sent, which then count as processed. A record that could not be sent stays
        failed, for the queue to retry (and, after its retries, dead-letter)."""
        url = self._deps.settings.dead_letter_queue_url
        sent: set[str] = set()
        for rec in records:
            mid = rec["messageId"]
            if mid not in permanent or rec.get("eventSource") != "aws:sqs":
                continue
            if not url:
                logger.error(
                    "a message failed for good but this consumer has no dead-letter queue "
                    "(DEAD_LETTER_QUEUE_URL); it is retried instead",
                    extra={"messageId": mid},
                )
                continue
            try:
                self._deps.sqs_client.send_message(**dead_letter(rec, permanent[mid], url))
            except Exception as exc:
                logger.warning(
                    "could not dead-letter the message; it will be retried",
                    extra={"messageId": mid, "error": f"{type(exc).__name__}: {exc}"},
                )
                continue
            logger.error(
                "message dead-lettered without retries",
                extra={"messageId": mid, "failure": permanent[mid]},
            )
            sent.add(mid)
        return sent

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
            if rec["messageId"] not in failed or rec.get("eventSource") != "aws:sqs":
                continue
            delay = backoff_seconds(
                receive_count(rec), s.retry_backoff_base_seconds, s.retry_backoff_max_seconds
            )
            try:
                self._deps.sqs_client.change_message_visibility(
                    QueueUrl=self._queue_url(_text(rec.get("eventSourceARN"))),
                    ReceiptHandle=_text(rec.get("receiptHandle")),
                    VisibilityTimeout=int(delay),
                )
            except Exception as exc:  # the queue's own visibility timeout applies instead
                logger.warning(
                    "could not set retry backoff",
                    extra={"messageId": rec["messageId"], "error": f"{type(exc).__name__}: {exc}"},
                )

    def _queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            self._queue_urls[arn] = queue_url_of(self._deps.sqs_client, arn)
        return self._queue_urls[arn]


def _archived(record: dict[str, Any], limit: int = 8192) -> str:
    """The record as received, as JSON text cut at `limit` characters, for the log."""
    try:
        text = json.dumps(record, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(record)
    return text[:limit]


def trace_carrier(record: Any) -> dict[str, str]:
    """The W3C trace fields among a record's message attributes (`traceparent`,
    `tracestate`), as the publisher set them."""
    attrs = record.get("messageAttributes") if isinstance(record, dict) else None
    out: dict[str, str] = {}
    for name in (tracing.TRACEPARENT, tracing.TRACESTATE):
        attr = attrs.get(name) if isinstance(attrs, dict) else None
        value = attr.get("stringValue") if isinstance(attr, dict) else None
        if isinstance(value, str):
            out[name] = value
    return out


def _messaging_system(record: dict[str, Any]) -> str:
    return "aws_sqs" if record.get("eventSource") == "aws:sqs" else "knative_broker"


def _batch_span(records: list[Any]) -> tuple[str, dict[str, Any], Any, list[Any]]:
    """The batch span's name, attributes, parent and links. A batch of one order's
    records (one trace) continues that trace; a batch of several orders is a trace of its
    own, linked to each order's (each record's span still joins its order's trace)."""
    source = _text(records[0].get("eventSourceARN")).rsplit(":", 1)[-1] or "queue"
    contexts = [tracing.extract_span_context(trace_carrier(r)) for r in records]
    found = [c for c in contexts if c is not None]
    traces = {c.trace_id for c in found}
    attributes = {
        "messaging.system": _messaging_system(records[0]),
        "messaging.destination.name": source,
        "messaging.batch.message_count": len(records),
        "messaging.operation.type": "receive",
    }
    if len(traces) == 1 and len(found) == len(records):
        return f"receive {source}", attributes, tracing.extract(trace_carrier(records[0])), []
    return f"receive {source}", attributes, None, found


def dead_letter(record: dict[str, Any], failure: str, queue_url: str) -> dict[str, Any]:
    """SendMessage arguments that put an SQS record, as received, on a dead-letter queue:
    its body, its message attributes and one more naming the failure."""
    attributes: dict[str, dict[str, Any]] = {}
    given = record.get("messageAttributes")
    for name, value in (given if isinstance(given, dict) else {}).items():
        converted = _send_attribute(value)
        if converted is not None and name != FAILURE_ATTRIBUTE:
            attributes[str(name)] = converted
    if len(attributes) < MAX_MESSAGE_ATTRIBUTES:
        # SQS takes only XML characters in attribute values; an error may quote anything.
        text = "".join(c if c.isprintable() else "?" for c in failure) or "-"
        attributes[FAILURE_ATTRIBUTE] = {"DataType": "String", "StringValue": text}
    args: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MessageBody": record.get("body") or "-",
        "MessageAttributes": attributes,
    }
    if queue_url.endswith(".fifo"):  # keep the group's order; a redelivery is not a duplicate
        attrs = record.get("attributes")
        group = attrs.get("MessageGroupId") if isinstance(attrs, dict) else None
        args["MessageGroupId"] = group or "dead-letters"
        args["MessageDeduplicationId"] = str(record["messageId"])[:128]
    return args


def _send_attribute(value: Any) -> dict[str, Any] | None:
    """A message attribute as Lambda delivers it (camelCase) as SendMessage takes it."""
    if not isinstance(value, dict) or not isinstance(value.get("dataType"), str):
        return None
    out: dict[str, Any] = {"DataType": value["dataType"]}
    if isinstance(value.get("stringValue"), str):
        out["StringValue"] = value["stringValue"]
    elif isinstance(value.get("binaryValue"), str):
        try:
            out["BinaryValue"] = base64.b64decode(value["binaryValue"], validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        return None
    return out
