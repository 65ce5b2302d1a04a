"""GET /orders: the caller's orders (or, for an admin, a customer's), newest first."""

from typing import Annotated

from funcmart.api.orders import OrderOut, OrderPage
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Query
from funcmart.services import orders

deps = build().ready("orders")
app = HttpFunction(deps, problems=(403,))


@app.get("/orders")
def list_orders(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    customer: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> OrderPage:
    page = orders.list_orders(deps.orders, app.principal(), limit, cursor, customer)
    return OrderPage(items=[OrderOut.of(o) for o in page.items], nextCursor=page.next_cursor)


handler = app.handler
