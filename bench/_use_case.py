"""ProcessOrder's use case alone: `services.orders.process_order` called in one process, one
order after another, with no host, queue or broker in front of it. It is what the Celery task
and the Knative consumer both run per order, so its CPU time is the part of either one's CPU
per order that no host or queue can save.

argv: <orders> <rounds>. The environment names the table and the backends (funcmart's own
settings). Each round loads `orders` PENDING orders, then charges them; the first round warms
up. Prints one JSON line: cpu_ms (this process's CPU time per order in each later round) and
outcomes (how the orders ended, all rounds together).
"""

from __future__ import annotations

import json
import resource
import sys
import uuid
from collections import Counter
from typing import Any


class _Kept:
    """A publisher that sends nothing: publishing is the host's part, not the use case's."""

    def publish(self, event: Any) -> None:
        pass


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(orders: int, rounds: int) -> dict[str, Any]:
    import os

    import boto3

    from bench import data
    from funcmart.bootstrap import build
    from funcmart.domain.orders import OrderPlaced
    from funcmart.services import orders as service

    ports = build(publisher=_Kept()).ready("order_ports").order_ports
    dynamodb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    table = os.environ["TABLE_NAME"]
    cpu_ms: list[float] = []
    outcomes: Counter[str] = Counter()
    for round_ in range(rounds + 1):
        ids = [uuid.uuid4().hex for _ in range(orders)]
        data.load_orders(dynamodb, table, ids, token="tok_ok")
        before = _cpu()
        for order_id in ids:
            outcomes[service.process_order(ports, OrderPlaced(order_id, f"c-{order_id}"))] += 1
        if round_:
            cpu_ms.append((_cpu() - before) * 1000 / orders)
    return {"cpu_ms": cpu_ms, "outcomes": dict(outcomes)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]))))
