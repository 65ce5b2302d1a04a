"""SQS order-placed: charge the order; PAID and OrderPaid, or FAILED with stock released."""

from funcmart.bootstrap import build
from funcmart.domain.errors import InvalidRequest
from funcmart.domain.orders import OrderPlaced
from funcmart.platforms.queue import QueueFunction, QueueMessage
from funcmart.services import orders

deps = build().ready("order_ports")


def on_message(message: QueueMessage) -> str:
    event = message.event()
    if not isinstance(event, OrderPlaced):
        raise InvalidRequest(f"expected OrderPlaced, got {event.type}")
    return orders.process_order(deps.order_ports, event)


handler = QueueFunction(deps, on_message).handler
