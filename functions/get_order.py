"""GET /orders/{orderId}: one order, for its owner or an admin."""

from funcmart.api.orders import OrderOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import orders

deps = build().ready("orders")
app = HttpFunction(deps, problems=(404,))


@app.get("/orders/<orderId>")
def get_order(orderId: str) -> Response[OrderOut]:
    return json_response(orders.get_order(deps.orders, app.principal(), orderId).to_dict())


handler = app.handler
