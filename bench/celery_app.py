"""The Celery baseline of the pipeline benchmark: the classic shop's worker, a Celery task on a
Redis broker running the very same use case, `services.orders.process_order`, over the same
adapters (DynamoDB Local, the payment simulator, Redis for the cache). OrderPaid is published
as a Celery task on the `order-paid` queue, as the classic shop would chain fulfilment.

Configured from the environment: BENCH_CELERY_BROKER (a Redis URL), BENCH_READY_FILE
(written when the worker is ready), and funcmart's own settings (TABLE_NAME, REDIS_URL,
AWS_ENDPOINT_URL_DYNAMODB, ...).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

PLACED_QUEUE = "order-placed"
PAID_QUEUE = "order-paid"

app = Celery("funcmart_bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://"))
app.conf.update(
    task_acks_late=True,  # at-least-once, as SQS delivers: a crash redelivers the task
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    # Prefetch as Celery's guide to optimizing advises: 1 for tasks that wait long, a large
    # multiplier for many short ones (set per run by the benchmark).
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
)
_ports: Any = None
_lock = threading.Lock()  # the threads pool's tasks may ask for the ports at once


class CeleryPublisher:
    """Publisher port over Celery: an event becomes a task message on its queue."""

    def publish(self, event: Any) -> None:
        from funcmart.domain.orders import event_to_dict

        app.send_task("bench.fulfil_order", args=[event_to_dict(event)], queue=PAID_QUEUE)


def ports() -> Any:
    global _ports
    with _lock:
        if _ports is None:
            from funcmart.bootstrap import build

            _ports = build(publisher=CeleryPublisher()).ready("order_ports").order_ports
        return _ports


@worker_process_init.connect
def _build(**_: Any) -> None:
    ports()  # clients built once per worker process, as a Lambda instance builds them


@worker_ready.connect
def _ready(**_: Any) -> None:
    if os.environ.get("BENCH_CELERY_POOL") == "threads":
        ports()  # the threads pool has no worker processes to build them in
    ready = os.environ.get("BENCH_READY_FILE")
    if ready:
        Path(ready).write_text(str(os.getpid()))


@app.task(name="bench.process_order")
def process_order(order_id: str, correlation_id: str) -> str:
    from funcmart.domain.orders import OrderPlaced
    from funcmart.services import orders

    return orders.process_order(ports(), OrderPlaced(order_id, correlation_id))
