"""Schedule: re-publish events of orders left open too long; release abandoned stock."""

from funcmart.bootstrap import build
from funcmart.entrypoints.schedule import ScheduledFunction
from funcmart.services import orders

deps = build().ready("order_ports", "reconcile_policy")

handler = ScheduledFunction(
    deps, lambda: orders.reconcile_orders(deps.order_ports, deps.reconcile_policy)
).handler
