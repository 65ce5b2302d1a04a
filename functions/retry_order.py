"""POST /operations/orders/{orderId}/retry (admin): an order that needs attention goes back
to the step that failed (PENDING, or PAID when its charge was captured) and its event is
published again. The reason is recorded on the order with who and when."""

from funcmart.api.operations import OperationsOrderOut, OperatorReason
from funcmart.bootstrap import build
from funcmart.domain.commands import RetryOrder
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import operations

deps = build().ready("order_ports", "publisher")
app = HttpFunction(deps, problems=(403, 404, 409))


@app.post("/operations/orders/<orderId>/retry")
def retry_order(orderId: str, body: OperatorReason) -> Response[OperationsOrderOut]:
    cmd = RetryOrder(orderId, body.reason, app.correlation_id)
    order = operations.retry_order(deps.order_ports, app.principal(), cmd)
    return json_response(order.to_operations_dict())


handler = app.handler
