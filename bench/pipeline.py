"""Pipeline throughput: orders/s from OrderPlaced to PAID.

funcmart: the local platform's queue poller hands ProcessOrder batches of OrderPlaced
messages from SQS (moto's, in its own process), as Lambda's event source mapping would;
ProcessOrder publishes OrderPaid to the order-paid queue. Celery: a worker on a Redis broker
runs the same use case (`services.orders.process_order`) with the same adapters and publishes
OrderPaid as a task on the `order-paid` queue. Neither side's OrderPaid is consumed: the
count of OrderPaid messages is the finish line.

Both workers run in one process pinned to the same core (os.sched_setaffinity); the services
they talk to (DynamoDB Local, moto, Redis) and this driver are not pinned. Every repeat runs
both, in alternating order, on fresh orders; the clock starts before the first OrderPlaced is
sent and stops when the last OrderPaid is counted. Afterwards every order must be PAID and its
simulated charge (`PAYSIM#<orderId>/CHARGE`) must show `captures == 1`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.backends import Backends, _stop, serve
from bench.common import ROOT, cpu_seconds, median, wait_until

SYSTEMS = ("funcmart", "celery")


@dataclass(frozen=True)
class Scenario:
    name: str
    token: str  # the card token of every order: what the payment simulator does
    gateway_seconds: float  # PAYMENT_SLOW_SECONDS: how long the gateway takes to answer
    orders: int


# Instant: the simulator answers at once, so each order is three table operations and the
# run measures how fast the consumers drive DynamoDB Local. Gateway 200 ms: the charge is
# captured at once but the answer takes 200 ms, as a card network's often does.
SCENARIOS = (
    Scenario("instant payment gateway", "tok_ok", 0.0, 600),
    Scenario("payment gateway answering in 200 ms", "tok_slow_bench", 0.2, 80),
)


@dataclass(frozen=True)
class Run:
    scenario: str
    system: str
    orders: int
    seconds: float
    exactly_once: bool
    detail: str
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per order, by process

    @property
    def rate(self) -> float:
        return self.orders / self.seconds


@dataclass
class Result:
    scenarios: tuple[Scenario, ...]
    repeats: int
    worker_cpus: tuple[int, ...]
    runs: list[Run] = field(default_factory=list)

    def _rates(self, scenario: str, system: str) -> list[float]:
        return [r.rate for r in self.runs if r.scenario == scenario and r.system == system]

    def rate(self, scenario: str, system: str) -> float:
        return median(self._rates(scenario, system))

    def ratio(self, scenario: str) -> float:
        """funcmart / Celery, per repeat (both measured in it), then the median."""
        pairs = zip(
            self._rates(scenario, "funcmart"), self._rates(scenario, "celery"), strict=False
        )
        return median([f / c for f, c in pairs])

    def exactly_once(self, scenario: str, system: str) -> bool:
        runs = [r for r in self.runs if r.scenario == scenario and r.system == system]
        return bool(runs) and all(r.exactly_once for r in runs)

    def cpu_ms(self, scenario: str, system: str) -> dict[str, float]:
        """Median CPU ms per order of each process, over the repeats."""
        runs = [r for r in self.runs if r.scenario == scenario and r.system == system]
        names = runs[0].cpu_ms if runs else {}
        return {n: median([r.cpu_ms[n] for r in runs]) for n in names}

    def details(self, scenario: str, system: str) -> str:
        runs = [r for r in self.runs if r.scenario == scenario and r.system == system]
        return " / ".join(dict.fromkeys(r.detail for r in runs))  # each different one once


def worker_cpus() -> set[int]:
    cpus = sorted(os.sched_getaffinity(0))
    return {cpus[-1]}


def check(backends: Backends, table: str, order_ids: list[str]) -> tuple[bool, str]:
    client = backends.dynamodb_client()
    orders = data.get_many(client, table, [(f"ORDER#{o}", "ORDER") for o in order_ids])
    charges = data.get_many(client, table, [(f"PAYSIM#{o}", "CHARGE") for o in order_ids])
    paid = sum(1 for o in orders if o["status"]["S"] in ("PAID", "FULFILLED"))
    once = sum(1 for c in charges if c.get("captures", {}).get("N") == "1")
    ok = paid == len(order_ids) and once == len(order_ids) and len(charges) == len(order_ids)
    return ok, f"{paid}/{len(order_ids)} PAID, {once}/{len(order_ids)} charges captured once"


def _orders(backends: Backends, table: str, scenario: Scenario) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(scenario.orders)]
    data.load_orders(backends.dynamodb_client(), table, ids, token=scenario.token)
    return ids


IN_FLIGHT = 50  # orders sent and not yet paid, at most: queues stay short, as in steady state


def _cpu(backends: Backends, worker: int) -> dict[str, float]:
    cpu = {"worker": cpu_seconds(worker), "driver": cpu_seconds(os.getpid(), descendants=False)}
    cpu.update({name: cpu_seconds(pid) for name, pid in backends.pids.items()})
    return cpu


def _per_order(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    return {name: (after[name] - before[name]) * 1000 / count for name in before}


def feed(
    order_ids: list[str],
    send: Callable[[list[str]], None],
    drain: Callable[[], int],
    chunk: int,
    timeout: float,
) -> None:
    """Closed loop: keep IN_FLIGHT orders between OrderPlaced sent and OrderPaid taken off
    its queue, until every order is paid. (moto's SQS scans a queue on every call, so a deep
    backlog would measure the emulator rather than the consumer.)"""
    deadline = time.monotonic() + timeout
    sent = done = 0
    while done < len(order_ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done} of {len(order_ids)} orders paid within {timeout}s")
        while sent < len(order_ids) and sent - done < IN_FLIGHT:
            n = min(chunk, len(order_ids) - sent, IN_FLIGHT - (sent - done))
            send(order_ids[sent : sent + n])
            sent += n
        done += drain()


def run_funcmart(
    backends: Backends, table: str, logs: Path, scenario: Scenario, cpus: set[int], timeout: float
) -> Run:
    order_ids = _orders(backends, table, scenario)
    count = len(order_ids)
    stack = f"pipe-{uuid.uuid4().hex[:6]}"
    consumer = serve(
        backends,
        table,
        logs,
        mode="consume",
        stack=stack,
        functions=["ProcessOrder"],
        cpus=cpus,
        name="funcmart-consumer",
        env={"PAYMENT_SLOW_SECONDS": str(scenario.gateway_seconds)},
    )
    sqs = backends.sqs_client()
    try:
        placed = sqs.get_queue_url(QueueName=f"{stack}-OrderPlacedQueue")["QueueUrl"]
        paid = sqs.get_queue_url(QueueName=f"{stack}-OrderPaidQueue")["QueueUrl"]

        def send(ids: list[str]) -> None:  # what PlaceOrder's SqsPublisher sends
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": json.dumps(
                        {"type": "OrderPlaced", "orderId": oid, "correlationId": f"bench-{oid}"},
                        separators=(",", ":"),
                    ),
                    "MessageAttributes": {
                        "eventType": {"DataType": "String", "StringValue": "OrderPlaced"},
                        "correlationId": {"DataType": "String", "StringValue": f"bench-{oid}"},
                    },
                }
                for n, oid in enumerate(ids)
            ]
            sqs.send_message_batch(QueueUrl=placed, Entries=entries)

        def drain() -> int:  # what a FulfilOrder poller would take off the order-paid queue
            got = sqs.receive_message(QueueUrl=paid, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = got.get("Messages") or []
            if messages:
                sqs.delete_message_batch(
                    QueueUrl=paid,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                        for n, m in enumerate(messages)
                    ],
                )
            return len(messages)

        cpu = _cpu(backends, consumer.proc.pid)
        started = time.perf_counter()
        feed(order_ids, send, drain, 10, timeout)
        seconds = time.perf_counter() - started
        cpu_ms = _per_order(cpu, _cpu(backends, consumer.proc.pid), count)
    finally:
        consumer.stop()
    ok, detail = check(backends, table, order_ids)
    return Run(scenario.name, "funcmart", count, seconds, ok, detail, cpu_ms)


def run_celery(
    backends: Backends, table: str, logs: Path, scenario: Scenario, cpus: set[int], timeout: float
) -> Run:
    import redis

    from bench import celery_app

    order_ids = _orders(backends, table, scenario)
    count = len(order_ids)
    broker = backends.redis_url.rsplit("/", 1)[0] + "/1"
    broker_client = redis.Redis.from_url(broker)
    broker_client.flushdb()  # our own redis-server's db 1: the broker's queues only
    celery_app.app.conf.broker_url = broker
    ready = logs / f"celery-{uuid.uuid4().hex[:6]}.ready"
    env = backends.env()
    env.update(BENCH_CELERY_BROKER=broker, BENCH_READY_FILE=str(ready), TABLE_NAME=table)
    env.update(LOG_LEVEL="INFO", POWERTOOLS_SERVICE_NAME="funcmart")
    # the simulator, as the local platform runs it for the funcmart side
    env.update(PAYMENT_PROVIDER="simulator", PAYMENT_SLOW_SECONDS=str(scenario.gateway_seconds))
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.celery_app",
        "worker",
        "--pool=prefork",
        "--concurrency=1",
        "-Q",
        celery_app.PLACED_QUEUE,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    with (logs / "celery.out").open("ab") as out:
        worker = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )
    try:
        wait_until(lambda: ready.exists() or worker.poll() is not None, 120, "celery ready")
        if worker.poll() is not None:
            raise RuntimeError(f"the celery worker exited; see {logs / 'celery.out'}")
        cpu = _cpu(backends, worker.pid)
        started = time.perf_counter()
        with celery_app.app.producer_or_acquire() as producer:

            def send(ids: list[str]) -> None:
                for oid in ids:
                    celery_app.process_order.apply_async(
                        args=[oid, f"bench-{oid}"], queue=celery_app.PLACED_QUEUE, producer=producer
                    )

            def drain() -> int:
                taken = broker_client.rpop(celery_app.PAID_QUEUE, 10) or []
                if not taken:
                    time.sleep(0.005)
                return len(taken)

            feed(order_ids, send, drain, 10, timeout)
        seconds = time.perf_counter() - started
        cpu_ms = _per_order(cpu, _cpu(backends, worker.pid), count)
    finally:
        _stop(worker)
        broker_client.close()
    ok, detail = check(backends, table, order_ids)
    return Run(scenario.name, "celery", count, seconds, ok, detail, cpu_ms)


def run(
    backends: Backends,
    logs: Path,
    *,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    repeats: int = 3,
    timeout: float = 180,
) -> Result:
    cpus = worker_cpus()
    table = backends.make_table()
    result = Result(scenarios, repeats, tuple(sorted(cpus)))
    for scenario in scenarios:
        for repeat in range(repeats):
            order = SYSTEMS if repeat % 2 == 0 else SYSTEMS[::-1]
            for system in order:
                runner = run_funcmart if system == "funcmart" else run_celery
                result.runs.append(runner(backends, table, logs, scenario, cpus, timeout))
    return result


def describe(result: Result) -> dict[str, Any]:
    return {
        s.name: {
            "funcmart": result.rate(s.name, "funcmart"),
            "celery": result.rate(s.name, "celery"),
            "ratio": result.ratio(s.name),
            "exactly_once": [result.exactly_once(s.name, x) for x in SYSTEMS],
            "cpu": {x: result.cpu_ms(s.name, x) for x in SYSTEMS},
        }
        for s in result.scenarios
    }
