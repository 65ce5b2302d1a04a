"""HandleDeadLetters acknowledges what it can never act on: a record with no body, a body that
is not JSON or not an order event, JSON nested deeper than any parser follows, an order that
does not exist. Each is logged and counted, and none is reported failed, so none goes round
between the dead-letter queue and the function."""

from __future__ import annotations

import json

import pytest

from funcmart_hosts.gateway.loader import Handler
from tests.support.events import sqs_event

DLQ = "arn:aws:sqs:us-east-1:123456789012:funcmart-OrderPlacedDeadLetterQueue"
UNKNOWN = json.dumps(
    {"type": "OrderPlaced", "orderId": "0000000000000000000000000000dead", "correlationId": "c"}
)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "not json",
        "[" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"type": "Unheard"}',
        UNKNOWN,
    ],
    ids=[
        "no-body",
        "empty",
        "not-json",
        "open-brackets",
        "deep-object",
        "unknown-type",
        "unknown-order",
    ],
)
def test_a_dead_letter_it_can_never_act_on_is_acknowledged(
    handlers: dict[str, Handler], body: str | None
) -> None:
    event = sqs_event([body if body is not None else "x"], DLQ, receive_count=3)
    if body is None:
        del event["Records"][0]["body"]
    answer = handlers["HandleDeadLetters"](event, None)
    assert answer == {"batchItemFailures": []}
