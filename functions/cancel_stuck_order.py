"""POST /operations/orders/{orderId}/cancel (admin): an order that needs attention is
cancelled; its stock comes back and a captured charge is refunded. The reason is recorded on
the order with who and when."""

from funcmart.api.operations import OperationsOrderOut, OperatorReason
from funcmart.bootstrap import build
from funcmart.domain.commands import CancelStuckOrder
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import operations

deps = build().ready("order_ports")
app = HttpFunction(deps, problems=(403, 404, 409))


@app.post("/operations/orders/<orderId>/cancel")
def cancel_stuck_order(orderId: str, body: OperatorReason) -> Response[OperationsOrderOut]:
    cmd = CancelStuckOrder(orderId, body.reason)
    order = operations.cancel_stuck_order(deps.order_ports, app.principal(), cmd)
    return json_response(order.to_operations_dict())


handler = app.handler
