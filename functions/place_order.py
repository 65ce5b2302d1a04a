"""POST /orders: reserve stock and record a PENDING order, once per Idempotency-Key; the
lines come from the body, or from the caller's cart when the body says "fromCart": true."""

from typing import Annotated

from funcmart.api.orders import IDEMPOTENCY_KEY_PATTERN, NewOrder, NewOrderFromCart, OrderOut
from funcmart.bootstrap import build
from funcmart.domain.commands import PlaceOrder, PlaceOrderFromCart
from funcmart.entrypoints.http import Body, Header, HttpFunction, Response, json_response
from funcmart.services import orders

deps = build().ready("order_ports", "publisher", "carts")
# A retry of an order already placed replays its answer even past a spent limit.
app = HttpFunction(
    deps,
    problems=(404, 409, 422),
    replays=lambda who, key: orders.is_replay(deps.orders, who, key),
)


@app.post("/orders", status_code=202)
def place_order(
    body: Annotated[NewOrder | NewOrderFromCart, Body()],
    key: Annotated[
        str,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=128,
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="visible ASCII characters, spaces only between them (e.g. a UUID)",
        ),
    ],
) -> Response[OrderOut]:
    who, cid, sent = app.principal(), app.correlation_id, body.model_dump()
    if isinstance(body, NewOrderFromCart):
        from_cart = PlaceOrderFromCart(key, body.paymentToken, sent, cid)
        placed = orders.place_order_from_cart(deps.order_ports, deps.carts, who, from_cart)
    else:
        cmd = PlaceOrder(key, body.requested(), body.paymentToken, sent, cid)
        placed = orders.place_order(deps.order_ports, who, cmd)
    headers = {"Location": f"/orders/{placed.body['id']}"}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(placed.body, 202, headers)


handler = app.handler
