"""GET /operations/orders: orders waiting in a state (admin), the longest waiting first;
NEEDS_ATTENTION unless the state parameter names another."""

from typing import Annotated, Literal

from funcmart.api.operations import OperationsOrderOut, OperationsOrderPage
from funcmart.bootstrap import build
from funcmart.domain.commands import ListOrdersByState
from funcmart.entrypoints.http import HttpFunction, Query
from funcmart.services import operations

deps = build().ready("orders")
app = HttpFunction(deps, problems=(403,))

State = Literal["NEEDS_ATTENTION", "PENDING", "PAID"]


@app.get("/operations/orders")
def list_orders_by_state(
    state: Annotated[State, Query()] = "NEEDS_ATTENTION",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> OperationsOrderPage:
    cmd = ListOrdersByState(state, limit, cursor)
    page = operations.list_orders_by_state(deps.orders, app.principal(), cmd)
    return OperationsOrderPage(
        items=[OperationsOrderOut.of(o) for o in page.items], nextCursor=page.next_cursor
    )


handler = app.handler
