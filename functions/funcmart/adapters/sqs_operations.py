"""SQS for operators: dead-letter redrive and queue backlogs.

Redrive on AWS is SQS's own message move task (StartMessageMoveTask), from each dead-letter
queue back to its source: SQS moves every message once and reports progress on the queue.
Endpoints without move tasks (moto, which the local platform embeds) get the same result
message by message: each batch is sent to the source, then deleted from the dead-letter
queue. A crash between the two sends a message twice at worst, which the consumers'
idempotence absorbs; none is lost.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from funcmart.adapters.sqs import queue_url_of
from funcmart.domain.errors import DependencyUnavailable, InvalidRequest
from funcmart.ports import Redrive

MOVE_TASK = "move-task"
COPY = "copy"
REDRIVE_METHODS = (MOVE_TASK, COPY)
SQS_BATCH = 10
# Moving one queue message by message stops after this many (the rest waits for the next
# redrive); a move task has no such limit.
MAX_COPIED = 10_000


def parse_pairs(spec: str | None) -> list[tuple[str, str]]:
    """ "dlqArn>sourceArn,..." as pairs (REDRIVE_QUEUES, set from the template)."""
    pairs = []
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        dlq, _, source = part.strip().partition(">")
        if not dlq or not source:
            raise InvalidRequest(f"REDRIVE_QUEUES entry {part!r} is not deadLetterArn>sourceArn")
        pairs.append((dlq, source))
    return pairs


def _name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


class SqsDeadLetterRedrive:
    def __init__(self, client: Any, pairs: list[tuple[str, str]], method: str = MOVE_TASK) -> None:
        if method not in REDRIVE_METHODS:
            raise ValueError(f"redrive method must be one of {REDRIVE_METHODS}")
        self._sqs = client
        self._pairs = pairs
        self._method = method

    def redrive(self) -> list[Redrive]:
        try:
            return [self._one(dlq, source) for dlq, source in self._pairs]
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable(f"SQS did not accept the redrive: {exc}") from exc

    def _one(self, dlq: str, source: str) -> Redrive:
        if self._method == MOVE_TASK:
            task = self._sqs.start_message_move_task(SourceArn=dlq, DestinationArn=source)
            return Redrive(_name(dlq), _name(source), task=task["TaskHandle"])
        return Redrive(_name(dlq), _name(source), moved=self._copy(dlq, source))

    def _url(self, arn: str) -> str:
        return queue_url_of(self._sqs, arn)

    def _copy(self, dlq: str, source: str) -> int:
        from_url, to_url = self._url(dlq), self._url(source)
        moved = 0
        while moved < MAX_COPIED:
            got = self._sqs.receive_message(
                QueueUrl=from_url,
                MaxNumberOfMessages=SQS_BATCH,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": m["Body"],
                    **(
                        {"MessageAttributes": m["MessageAttributes"]}
                        if m.get("MessageAttributes")
                        else {}
                    ),
                }
                for i, m in enumerate(got)
            ]
            sent = self._sqs.send_message_batch(QueueUrl=to_url, Entries=entries)
            ok = {e["Id"] for e in sent.get("Successful", [])}
            done = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(got)
                if str(i) in ok
            ]
            if done:  # the ones not sent stay, visible again after the visibility timeout
                self._sqs.delete_message_batch(QueueUrl=from_url, Entries=done)
            moved += len(done)
            if len(done) < len(got):
                break
        return moved


BACKLOG_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


class SqsQueueBacklog:
    """Messages waiting, delayed or in flight (a failed one waiting out its backoff is in
    flight) in the queue of each event type."""

    def __init__(self, client: Any, queue_urls: dict[str, str]) -> None:
        self._sqs = client
        self._urls = queue_urls

    def waiting(self, event_type: str) -> int | None:
        url = self._urls.get(event_type)
        if not url:
            return None
        try:
            attrs = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=BACKLOG_ATTRIBUTES)[
                "Attributes"
            ]
        except (BotoCoreError, ClientError):
            return None  # no evidence either way: the reconciler falls back to its time limit
        return sum(int(attrs.get(name, 0)) for name in BACKLOG_ATTRIBUTES)
