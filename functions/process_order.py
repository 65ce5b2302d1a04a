"""SQS order-placed: charge the order; PAID and OrderPaid, or FAILED with stock released."""

from funcmart.bootstrap import build
from funcmart.domain.orders import OrderPlaced
from funcmart.entrypoints.queue import QueueFunction, QueueMessage
from funcmart.services import orders

deps = build().ready("order_ports", "publisher")


def on_message(message: QueueMessage) -> str:
    event = message.event_of(OrderPlaced)
    return orders.process_order(deps.order_ports, event, redelivered=message.receive_count > 1)


handler = QueueFunction(deps, on_message).handler
