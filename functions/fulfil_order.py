"""SQS order-paid: PAID to FULFILLED with a shipment and a customer notification."""

from funcmart.bootstrap import build
from funcmart.domain.orders import OrderPaid
from funcmart.entrypoints.queue import QueueFunction, QueueMessage
from funcmart.services import orders

deps = build().ready("order_ports")


def on_message(message: QueueMessage) -> str:
    return orders.fulfil_order(deps.order_ports, message.event_of(OrderPaid))


handler = QueueFunction(deps, on_message).handler
