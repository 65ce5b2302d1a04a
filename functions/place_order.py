"""POST /orders: reserve stock and record a PENDING order, once per Idempotency-Key."""

from aws_lambda_powertools.event_handler import Response

from funcmart.api.orders import NewOrder, OrderOut
from funcmart.bootstrap import build
from funcmart.platforms.http import HttpFunction, json_response
from funcmart.services import orders

deps = build().ready("order_ports")
app = HttpFunction(deps)


@app.post("/orders")
def place_order(body: NewOrder) -> Response[OrderOut]:
    placed = orders.place_order(
        deps.order_ports,
        app.principal(),
        app.header("Idempotency-Key"),
        body.requested(),
        body.paymentToken,
        body.model_dump(),
        app.correlation_id,
    )
    headers = {"Location": f"/orders/{placed.body['id']}"}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(placed.body, placed.status_code, headers)


handler = app.handler
