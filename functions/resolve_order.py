"""POST /operations/orders/{orderId}/resolve (admin): an order that needs attention, paid
and handled by hand, is closed as FULFILLED. The note is recorded on the order with who and
when."""

from funcmart.api.operations import OperationsOrderOut, OperatorReason
from funcmart.bootstrap import build
from funcmart.domain.commands import ResolveOrder
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import operations

deps = build().ready("order_ports")
app = HttpFunction(deps, problems=(403, 404, 409))


@app.post("/operations/orders/<orderId>/resolve")
def resolve_order(orderId: str, body: OperatorReason) -> Response[OperationsOrderOut]:
    cmd = ResolveOrder(orderId, body.reason)
    order = operations.resolve_order(deps.order_ports, app.principal(), cmd)
    return json_response(order.to_operations_dict())


handler = app.handler
