"""SQS order-paid: PAID to FULFILLED with a shipment and a customer notification."""

from funcmart.bootstrap import build
from funcmart.domain.errors import InvalidRequest
from funcmart.domain.orders import OrderPaid
from funcmart.platforms.queue import QueueFunction, QueueMessage
from funcmart.services import orders

deps = build().ready("order_ports")


def on_message(message: QueueMessage) -> str:
    event = message.event()
    if not isinstance(event, OrderPaid):
        raise InvalidRequest(f"expected OrderPaid, got {event.type}")
    return orders.fulfil_order(deps.order_ports, event)


handler = QueueFunction(deps, on_message).handler
