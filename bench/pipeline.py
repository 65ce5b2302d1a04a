"""Pipeline throughput: orders/s from OrderPlaced to PAID, funcmart against Celery at its best.

funcmart: the local platform's queue pollers hand ProcessOrder batches of OrderPlaced
messages from SQS (moto's, in its own process), as Lambda's event source mapping would:
`pollers` batches of the queue at once (FUNCMART_POLLERS), the records of each batch
concurrently (BATCH_CONCURRENCY); ProcessOrder publishes OrderPaid to the order-paid queue,
one SendMessageBatch per batch, and the poller deletes each batch in one DeleteMessageBatch.
Celery: a worker on a Redis broker runs the same use case (`services.orders.process_order`)
with the same adapters and publishes OrderPaid as a task on the `order-paid` queue (acks
late, prefetch as Celery's docs advise: 1 when tasks wait on a slow gateway, a large
multiplier for many short ones).

Both sides are swept over about the same range of concurrency (Celery: prefork and threads
pools, 1 to 32; funcmart: batch size, batch concurrency and pollers, 1 to 80 orders in
progress at once) and the best of each is then
run again `repeats` times, alternating which side goes first; ratios are taken within a
repeat. DynamoDB Local (a JVM) is warmed by an unmeasured run first.

Each worker is one process (Celery's prefork children included) pinned to the same core
(os.sched_setaffinity); the services they talk to (DynamoDB Local, moto, Redis) and this
driver are not pinned. The clock starts before the first OrderPlaced is sent and stops when
OrderPaid has been taken off its queue for every order (distinct order ids: a duplicate does
not count twice). Afterwards every order must be PAID and its simulated charge
(`PAYSIM#<orderId>/CHARGE`) must show `captures == 1`: exactly once.
"""

from __future__ import annotations

import base64
import dataclasses
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
class Config:
    """One side's setting: Celery's pool and concurrency, or funcmart's batch size, batch
    concurrency (records of one batch at once) and pollers (batches of the queue at once,
    FUNCMART_POLLERS)."""

    system: str
    pool: str  # prefork | threads (Celery), batch (funcmart)
    concurrency: int
    batch_size: int = 10
    pollers: int = 1

    @property
    def label(self) -> str:
        if self.system == "celery":
            return f"{self.pool}, concurrency {self.concurrency}"
        return f"batch {self.batch_size}, concurrency {self.concurrency}, pollers {self.pollers}"

    @property
    def units(self) -> int:
        """Orders in progress at once, at most: Celery's concurrency; for funcmart each
        poller's batch, its records `concurrency` at a time."""
        if self.system == "celery":
            return self.concurrency
        return self.pollers * min(self.concurrency, self.batch_size)


CELERY_SWEEP = tuple(
    Config("celery", pool, c)
    for pool, c in (("prefork", 1), ("prefork", 4), ("threads", 8), ("threads", 32))
)
FUNCMART_SWEEP = tuple(
    Config("funcmart", "batch", c, size, pollers)
    for size, c, pollers in ((10, 1, 1), (10, 1, 4), (10, 10, 4), (10, 10, 8), (32, 32, 2))
)
FULL_SWEEP = CELERY_SWEEP + FUNCMART_SWEEP
SMOKE_SWEEP = (Config("celery", "threads", 4), Config("funcmart", "batch", 10, 10, 2))


@dataclass(frozen=True)
class Scenario:
    name: str
    token: str  # the card token of every order: what the payment simulator does
    gateway_seconds: float  # PAYMENT_SLOW_SECONDS: how long the gateway takes to answer
    orders: int  # per run; with a slow gateway at least, and per_unit per unit of concurrency
    per_unit: int = 20

    def orders_for(self, concurrency: int) -> int:
        if not self.gateway_seconds:
            return self.orders
        return min(600, max(self.orders, self.per_unit * concurrency))

    @property
    def prefetch(self) -> int:
        return 1 if self.gateway_seconds else 16


# Instant: the simulator answers at once, so each order is three table operations and the
# run measures how fast the consumers drive DynamoDB Local. Gateway 200 ms: the charge is
# captured at once but the answer takes 200 ms, as a card network's often does.
SCENARIOS = (
    Scenario("instant payment gateway", "tok_ok", 0.0, 300),
    Scenario("payment gateway answering in 200 ms", "tok_slow_bench", 0.2, 40),
)


@dataclass(frozen=True)
class Run:
    scenario: str
    system: str
    config: Config
    final: bool  # a run of the best settings (False: the sweep)
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
    warm_orders: int = 0
    best_configs: dict[tuple[str, str], Config] = field(default_factory=dict)

    def _final(self, scenario: str, system: str) -> list[Run]:
        return [r for r in self.runs if r.scenario == scenario and r.system == system and r.final]

    def _rates(self, scenario: str, system: str) -> list[float]:
        return [r.rate for r in self._final(scenario, system)]

    def best(self, scenario: str, system: str) -> Config:
        return self.best_configs[(scenario, system)]

    def curve(self, scenario: str, system: str) -> list[Run]:
        """The sweep's runs of one side, in the order of its settings."""
        return [
            r for r in self.runs if r.scenario == scenario and r.system == system and not r.final
        ]

    def rate(self, scenario: str, system: str) -> float:
        return median(self._rates(scenario, system))

    def ratio(self, scenario: str) -> float:
        """funcmart / Celery, per repeat (both measured in it), then the median."""
        pairs = zip(
            self._rates(scenario, "funcmart"), self._rates(scenario, "celery"), strict=False
        )
        return median([f / c for f, c in pairs])

    def exactly_once(self, scenario: str, system: str) -> bool:
        """Every run of the side, sweep included."""
        runs = [r for r in self.runs if r.scenario == scenario and r.system == system]
        return bool(runs) and all(r.exactly_once for r in runs)

    def cpu_ms(self, scenario: str, system: str) -> dict[str, float]:
        """Median CPU ms per order of each process, over the best settings' repeats."""
        runs = self._final(scenario, system)
        names = runs[0].cpu_ms if runs else {}
        return {n: median([r.cpu_ms[n] for r in runs]) for n in names}

    def details(self, scenario: str, system: str) -> str:
        runs = [r for r in self.runs if r.scenario == scenario and r.system == system]
        wrong = [f"{r.config.label}: {r.detail}" for r in runs if not r.exactly_once]
        if wrong:
            return "; ".join(wrong)
        return f"all {len(runs)} runs: every order PAID, every charge captured once"


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


def _orders(backends: Backends, table: str, scenario: Scenario, count: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(count)]
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
    drain: Callable[[], list[str]],
    chunk: int,
    timeout: float,
    in_flight: int = IN_FLIGHT,
) -> None:
    """Closed loop: keep `in_flight` orders between OrderPlaced sent and OrderPaid taken off
    its queue, until OrderPaid has come for every order (`drain` answers the order ids it
    took; each order counts once). moto's SQS scans a queue on every call, so a deep backlog
    would measure the emulator rather than the consumer."""
    deadline = time.monotonic() + timeout
    wanted = set(order_ids)
    paid: set[str] = set()
    sent = 0
    while len(paid) < len(order_ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(paid)} of {len(order_ids)} orders paid within {timeout}s")
        while sent < len(order_ids) and sent - len(paid) < in_flight:
            n = min(chunk, len(order_ids) - sent, in_flight - (sent - len(paid)))
            send(order_ids[sent : sent + n])
            sent += n
        paid.update(o for o in drain() if o in wanted)


def in_flight(config: Config) -> int:
    """Orders kept in flight: enough to keep every unit of concurrency busy."""
    return max(IN_FLIGHT, 2 * config.units, 2 * config.batch_size * config.pollers)


def run_funcmart(
    backends: Backends,
    table: str,
    logs: Path,
    scenario: Scenario,
    cpus: set[int],
    timeout: float,
    config: Config = FUNCMART_SWEEP[1],
    final: bool = False,
) -> Run:
    order_ids = _orders(backends, table, scenario, scenario.orders_for(config.units))
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
        env={
            "PAYMENT_SLOW_SECONDS": str(scenario.gateway_seconds),
            "BATCH_CONCURRENCY": str(config.concurrency),
        },
        batch_size=config.batch_size,
        pollers=config.pollers,
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

        def drain() -> list[str]:  # what a FulfilOrder poller would take off order-paid
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
            return [str(json.loads(m["Body"]).get("orderId")) for m in messages]

        cpu = _cpu(backends, consumer.proc.pid)
        started = time.perf_counter()
        feed(order_ids, send, drain, 10, timeout, in_flight(config))
        seconds = time.perf_counter() - started
        cpu_ms = _per_order(cpu, _cpu(backends, consumer.proc.pid), count)
    finally:
        consumer.stop()
    ok, detail = check(backends, table, order_ids)
    return Run(scenario.name, "funcmart", config, final, count, seconds, ok, detail, cpu_ms)


def run_celery(
    backends: Backends,
    table: str,
    logs: Path,
    scenario: Scenario,
    cpus: set[int],
    timeout: float,
    config: Config = CELERY_SWEEP[0],
    final: bool = False,
) -> Run:
    import redis

    from bench import celery_app

    order_ids = _orders(backends, table, scenario, scenario.orders_for(config.units))
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
    env.update(BENCH_CELERY_PREFETCH=str(scenario.prefetch), BENCH_CELERY_POOL=config.pool)
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.celery_app",
        "worker",
        f"--pool={config.pool}",
        f"--concurrency={config.concurrency}",
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

            def drain() -> list[str]:
                taken = broker_client.rpop(celery_app.PAID_QUEUE, 10) or []
                if not taken:
                    time.sleep(0.005)
                return [_celery_order_id(raw) for raw in taken]

            feed(order_ids, send, drain, 10, timeout, in_flight(config))
        seconds = time.perf_counter() - started
        cpu_ms = _per_order(cpu, _cpu(backends, worker.pid), count)
    finally:
        _stop(worker)
        broker_client.close()
    ok, detail = check(backends, table, order_ids)
    return Run(scenario.name, "celery", config, final, count, seconds, ok, detail, cpu_ms)


def _celery_order_id(raw: bytes) -> str:
    """The order id of an OrderPaid task message (kombu's JSON envelope, body in base64)."""
    message = json.loads(raw)
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return str(args[0]["orderId"])


def _interleaved(configs: tuple[Config, ...], celery_first: bool) -> list[Config]:
    """The sweep's settings, the two sides taking turns."""
    sides = [[c for c in configs if c.system == s] for s in ("celery", "funcmart")]
    if not celery_first:
        sides.reverse()
    out: list[Config] = []
    for n in range(max(len(s) for s in sides)):
        out += [s[n] for s in sides if n < len(s)]
    return out


def run(
    backends: Backends,
    logs: Path,
    *,
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    sweep: tuple[Config, ...] = FULL_SWEEP,
    repeats: int = 2,
    timeout: float = 180,
    warm_orders: int = 300,
) -> Result:
    cpus = worker_cpus()
    table = backends.make_table()
    result = Result(scenarios, repeats, tuple(sorted(cpus)), warm_orders=warm_orders)

    def one(scenario: Scenario, config: Config, final: bool) -> Run:
        runner = run_funcmart if config.system == "funcmart" else run_celery
        return runner(backends, table, logs, scenario, cpus, timeout, config, final)

    if warm_orders:  # DynamoDB Local's JVM compiles its hot paths first; not measured
        warm = Scenario("warm-up", "tok_ok", 0.0, warm_orders)
        one(warm, Config("funcmart", "batch", 10, 10), False)
    for n, scenario in enumerate(scenarios):
        for config in _interleaved(sweep, celery_first=n % 2 == 0):
            result.runs.append(one(scenario, config, False))
        for system in SYSTEMS:
            ok = [r for r in result.curve(scenario.name, system) if r.exactly_once]
            best = max(ok or result.curve(scenario.name, system), key=lambda r: r.rate)
            result.best_configs[(scenario.name, system)] = best.config
            if not repeats:  # a smoke run: the sweep's best run stands for the final ones
                result.runs.append(dataclasses.replace(best, final=True))
        for repeat in range(repeats):
            order = SYSTEMS if (repeat + n) % 2 == 0 else SYSTEMS[::-1]
            for system in order:
                best_config = result.best(scenario.name, system)
                result.runs.append(one(scenario, best_config, True))
    return result


def describe(result: Result) -> dict[str, Any]:
    return {
        s.name: {
            "funcmart": result.rate(s.name, "funcmart"),
            "celery": result.rate(s.name, "celery"),
            "ratio": result.ratio(s.name),
            "exactly_once": [result.exactly_once(s.name, x) for x in SYSTEMS],
            "cpu": {x: result.cpu_ms(s.name, x) for x in SYSTEMS},
            "best": {x: result.best(s.name, x).label for x in SYSTEMS},
        }
        for s in result.scenarios
    }
