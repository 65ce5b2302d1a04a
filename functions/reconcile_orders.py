"""Schedule: re-publish events of orders left open too long (unless their queue has a
backlog); flag on evidence; release abandoned stock."""

from funcmart.bootstrap import build
from funcmart.entrypoints.schedule import ScheduledFunction
from funcmart.services import orders

deps = build().ready("order_ports", "publisher", "reconcile_policy", "queue_backlog")

handler = ScheduledFunction(
    deps,
    lambda: orders.reconcile_orders(deps.order_ports, deps.reconcile_policy, deps.queue_backlog),
).handler
