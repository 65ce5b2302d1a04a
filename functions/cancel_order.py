"""POST /orders/{orderId}/cancel: cancel a PENDING, PAID or NEEDS_ATTENTION order; stock
back, a captured charge refunded."""

from funcmart.api.orders import OrderOut
from funcmart.bootstrap import build
from funcmart.domain.commands import CancelOrder
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import orders

deps = build().ready("order_ports")
app = HttpFunction(deps, problems=(404, 409))


@app.post("/orders/<orderId>/cancel")
def cancel_order(orderId: str) -> Response[OrderOut]:
    order = orders.cancel_order(deps.order_ports, app.principal(), CancelOrder(orderId))
    return json_response(order.to_dict())


handler = app.handler
