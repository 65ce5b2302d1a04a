"""SQS dead-letter queues: flag the order NEEDS_ATTENTION, count it, log it for a person.

An order in its state for less than DEAD_LETTER_MIN_AGE_SECONDS is left alone, counted and
logged ("too early to be a dead letter"): no message that exhausted its retries comes that
soon, so it is a captured event posted again (orders.DeadLetterPolicy).

A record it can never act on (no body, not an order event, an unknown order) is logged in
full, counted and acknowledged: retrying cannot change it, and a failure here would only send
it round again."""

from aws_lambda_powertools import Logger

from funcmart.bootstrap import build
from funcmart.domain.errors import InvalidRequest
from funcmart.entrypoints.queue import QueueFunction, QueueMessage
from funcmart.services import orders

deps = build().ready("order_ports", "dead_letter_policy")
logger = Logger(service="funcmart")


def on_message(message: QueueMessage) -> str:
    logger.error(
        "message dead-lettered",
        extra={"queue": message.source, "messageId": message.message_id, "body": message.body},
    )
    try:
        event = message.event()
    except InvalidRequest:
        deps.metrics.incr("DeadLettersUnreadable")
        return "unreadable"  # logged above in full; retrying cannot make it readable
    return orders.handle_dead_letter(
        deps.order_ports, deps.dead_letter_policy, event, message.source
    )


handler = QueueFunction(deps, on_message, acknowledge_permanent=True).handler
