"""ProcessOrder on the Knative path: the broker's CloudEvent push into the Knative host, the
consumer's CPU per order beside Celery's worker CPU per order for the same work (the pipeline
benchmark's instant-gateway scenario).

The host is the container's command (`python -m funcmart_hosts.knative`) with ProcessOrder's
environment from infra/, pinned to the worker core as the pipeline's workers are; this driver
plays the broker: it POSTs each OrderPlaced as a signed binary-mode CloudEvent, `concurrency`
at once (as a Trigger's dispatcher does), and a stand-in for the broker's ingress takes the
OrderPaid events ProcessOrder publishes. Only the host's CPU time is counted. Afterwards every
order must be PAID with its charge captured once.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import data
from bench.backends import Backends, _stop
from bench.common import ROOT, cpu_seconds, median


@dataclass
class Result:
    orders: int
    concurrency: int
    cpu_ms: list[float] = field(default_factory=list)  # host CPU per order, per repeat
    # ProcessOrder's use case alone (bench/_use_case.py) per order, per repeat: the part of
    # the host's figure (and of Celery's) that no host or queue can save
    use_case_ms: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    exactly_once: bool = True
    detail: str = ""

    def cpu(self) -> float:
        return median(self.cpu_ms)

    def use_case(self) -> float:
        return median(self.use_case_ms) if self.use_case_ms else 0.0


@contextlib.contextmanager
def broker_ingress() -> Iterator[tuple[str, set[str]]]:
    """A stand-in for the broker's ingress (K_SINK): the order ids of the events it took."""
    taken: set[str] = set()
    lock = threading.Lock()

    class Ingress(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the broker's ingress (Go's net/http)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                taken.add(str(json.loads(raw).get("orderId")))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingress)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="ingress")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/funcmart/default", taken
    finally:
        server.shutdown()
        server.server_close()


def run(
    backends: Backends,
    logs: Path,
    cpus: set[int],
    *,
    orders: int = 300,
    concurrency: int = 8,
    repeats: int = 2,
) -> Result:
    import httpx

    from bench.peers import manifest_env
    from bench.pipeline import check
    from funcmart.adapters.event_signing import EventKeys
    from funcmart_hosts.local import services

    table = backends.make_table()
    key = secrets.token_hex(32)
    result = Result(orders, concurrency)
    with broker_ingress() as (sink, taken):
        port = services.free_port()
        env = {
            **os.environ,
            **manifest_env("process-order.yaml"),
            **backends.env(),
            "TABLE_NAME": table,
            "PORT": str(port),
            "METRICS_PORT": str(services.free_port()),
            "FUNCMART_EVENT_KEY": key,
            "K_SINK": sink,
            "PAYMENT_PROVIDER": "simulator",
            "PAYMENT_SLOW_SECONDS": "0",
            "LOG_LEVEL": "INFO",
        }
        with (logs / "knative-consumer.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "funcmart_hosts.knative", "--host", "127.0.0.1"],
                cwd=ROOT / "functions", env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus),
            )  # fmt: skip
        try:
            services.wait_for_port(port, 90, proc)
            keys = EventKeys(key)
            client = httpx.Client(timeout=30)
            url = f"http://127.0.0.1:{port}/"

            def deliver(order_id: str) -> int:
                attributes = {
                    "specversion": "1.0",
                    "id": uuid.uuid4().hex,
                    "source": "funcmart/place-order",
                    "type": "dev.funcmart.order.placed",
                    "subject": order_id,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "correlationid": f"bench-{order_id}",
                }
                body = {
                    "type": "OrderPlaced",
                    "orderId": order_id,
                    "correlationId": f"c-{order_id}",
                }
                attributes.update(keys.sign(attributes, body))
                headers = {f"ce-{k}": v for k, v in attributes.items()}
                headers["content-type"] = "application/json"
                return client.post(url, headers=headers, content=json.dumps(body)).status_code

            for repeat in range(repeats + 1):  # the first round warms the JVM and the host
                ids = [uuid.uuid4().hex for _ in range(orders)]
                data.load_orders(backends.dynamodb_client(), table, ids, token="tok_ok")
                before = cpu_seconds(proc.pid)
                started = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    statuses = list(pool.map(deliver, ids))
                elapsed = time.perf_counter() - started
                spent = cpu_seconds(proc.pid) - before
                ok, detail = check(backends, table, ids)
                ok = ok and all(200 <= s < 300 for s in statuses) and set(ids) <= taken
                if repeat:
                    result.cpu_ms.append(spent * 1000 / orders)
                    result.seconds.append(elapsed)
                    result.exactly_once = result.exactly_once and ok
                    result.detail = detail
            client.close()
        finally:
            _stop(proc)
        result.use_case_ms = use_case(env, cpus, orders, repeats, logs)
    return result


def use_case(
    env: dict[str, str], cpus: set[int], orders: int, repeats: int, logs: Path
) -> list[float]:
    """ProcessOrder's use case alone (bench/_use_case.py) on the same cores, the same
    backends and table: its CPU time per order in each repeat."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "functions")])
    with (logs / "knative-consumer-use-case.log").open("ab") as err:
        out = subprocess.run(
            [sys.executable, "-m", "bench._use_case", str(orders), str(repeats)],
            cwd=ROOT, env={**env, "PYTHONPATH": path},
            stdout=subprocess.PIPE, stderr=err, check=True, timeout=600,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        )  # fmt: skip
    found = json.loads(out.stdout.decode().strip().splitlines()[-1])
    if set(found["outcomes"]) != {"paid"}:
        raise RuntimeError(f"the use case alone did not pay every order: {found['outcomes']}")
    return [float(ms) for ms in found["cpu_ms"]]
