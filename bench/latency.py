"""HTTP latency and throughput through the local gateway, with the load generator in a process
of its own: GetProduct (cache hit and miss), ListProducts, PlaceOrder and an empty function
(the gateway's ceiling) at several concurrencies.

One gateway process serves every route (handler calls are serialized in it; see
docs/local-platform.md). Runs go round-robin: every repeat runs every scenario at every
concurrency, in a shuffled order, so background load spreads over all of them and the ratio
to the empty function is taken within each repeat.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.backends import Backends, serve
from bench.common import ROOT, median, percentile

# The rate limiter stays on (one Redis call per request, as deployed) with limits that one
# benchmark caller never reaches.
UNLIMITED = {
    "ReadsRateLimit": "100000000/60s",
    "WritesRateLimit": "100000000/60s",
    "OrdersRateLimit": "100000000/60s",
}
SCENARIOS = ("Empty", "GetProduct hit", "GetProduct miss", "ListProducts", "PlaceOrder")
HIT_PRODUCTS = 50
ORDER_PRODUCTS = 200


@dataclass(frozen=True)
class Run:
    p50: float
    p95: float
    p99: float
    rps: float
    requests: int
    errors: int
    failure: str | None = None  # the first wrong answer, described


@dataclass
class Result:
    concurrencies: tuple[int, ...]
    repeats: int
    runs: dict[tuple[str, int], list[Run]] = field(default_factory=dict)
    ratios: dict[int, list[float]] = field(default_factory=dict)  # hit rps / empty rps

    def figure(self, scenario: str, concurrency: int, key: str) -> float:
        return median([getattr(r, key) for r in self.runs[(scenario, concurrency)]])

    def ratio(self, concurrency: int) -> float:
        return median(self.ratios.get(concurrency, []))


@dataclass(frozen=True)
class Sizes:
    products: int
    requests: dict[str, int]
    warmup: int
    max_seconds: float


FULL = Sizes(
    products=3000,
    requests={
        "Empty": 2000,
        "GetProduct hit": 2000,
        "GetProduct miss": 1000,
        "ListProducts": 500,
        "PlaceOrder": 250,
    },
    warmup=40,
    max_seconds=12,
)
SMOKE = Sizes(products=300, requests=dict.fromkeys(SCENARIOS, 10), warmup=2, max_seconds=10)


def _tokens(count: int) -> list[str]:
    from funcmart_hosts.gateway.auth import mint_token
    from funcmart_hosts.gateway.template import load
    from funcmart_hosts.local.config import LocalSettings
    from funcmart_hosts.local.resources import default_jwt_config

    settings = LocalSettings()
    config = default_jwt_config(load(ROOT / "template.yaml"), settings)
    return [
        mint_token(settings.jwt_secret, config, f"bench-customer-{i}", [], 3600)
        for i in range(count)
    ]


def requests_for(scenario: str, count: int, tokens: list[str], offset: int = 0) -> list[Any]:
    """`count` requests of one scenario: [method, path, headers, body]."""
    out: list[Any] = []
    for n in range(offset, offset + count):
        if scenario == "Empty":
            out.append(["GET", "/empty", {}, ""])
        elif scenario == "GetProduct hit":
            out.append(["GET", f"/products/{data.product_id(n % HIT_PRODUCTS)}", {}, ""])
        elif scenario == "GetProduct miss":
            pid = data.product_id(HIT_PRODUCTS + ORDER_PRODUCTS + n)
            out.append(["GET", f"/products/{pid}", {}, ""])
        elif scenario == "ListProducts":
            out.append(["GET", f"/products?category={data.category(n)}&limit=20", {}, ""])
        elif scenario == "PlaceOrder":
            body = {
                "lines": [
                    {"productId": data.product_id(HIT_PRODUCTS + n % ORDER_PRODUCTS), "quantity": 1}
                ],
                "paymentToken": "tok_ok",
            }
            headers = {
                "Authorization": f"Bearer {tokens[n % len(tokens)]}",
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            out.append(["POST", "/orders", headers, json.dumps(body)])
    return out


def _generate(spec: dict[str, Any], max_seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._loadgen"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=max_seconds + 120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(Path(spec["out"]).read_text())
    return answer


def load(
    url: str,
    concurrency: int,
    requests: list[Any],
    warmup: int,
    max_seconds: float,
    *,
    expect: dict[str, Any] | None = None,
    cycle: bool = False,
) -> Run:
    """One cell: `requests` at `concurrency` for up to `max_seconds` (with `cycle`, round the
    list for exactly that long). With `expect`, every answer is checked (see _loadgen) and a
    wrong one counts as an error."""
    host, port = url.removeprefix("http://").split(":")
    spec = {
        "host": host,
        "port": int(port),
        "concurrency": concurrency,
        "requests": requests,
        "warmup": warmup,
        "max_seconds": max_seconds,
        "expect": expect,
        "cycle": cycle,
    }
    with tempfile.TemporaryDirectory(prefix="funcmart-load-") as tmp:
        spec["out"] = str(Path(tmp) / "answer.json")
        answer = _generate(spec, max_seconds)
    lat = answer["latencies_ms"]
    ok = sum(n for status, n in answer["statuses"].items() if status.startswith("2"))
    return Run(
        p50=percentile(lat, 50),
        p95=percentile(lat, 95),
        p99=percentile(lat, 99),
        rps=len(lat) / answer["elapsed_s"],
        requests=len(lat),
        errors=answer["failures"] if expect else len(lat) - ok,
        failure=answer["failure"],
    )


def run(
    backends: Backends,
    logs: Path,
    *,
    concurrencies: tuple[int, ...] = (1, 8, 32),
    repeats: int = 3,
    sizes: Sizes = FULL,
) -> Result:
    import redis

    table = backends.make_table()
    data.load_products(backends.dynamodb_client(), table, 0, sizes.products)
    gateway = serve(
        backends, table, logs, mode="http", stack="bench-http", name="gateway", parameters=UNLIMITED
    )
    assert gateway.url is not None
    cache = redis.Redis.from_url(backends.redis_url)
    tokens = _tokens(32)
    result = Result(concurrencies, repeats)
    rng = random.Random(6)
    try:
        for _ in range(repeats):
            plan = [(s, c) for c in concurrencies for s in SCENARIOS]
            rng.shuffle(plan)
            measured: dict[tuple[str, int], Run] = {}
            for scenario, c in plan:
                count = sizes.requests[scenario]
                warm = sizes.warmup
                if scenario == "GetProduct miss":
                    cache.flushdb()  # our own redis-server: every product is a miss again
                elif scenario == "GetProduct hit":
                    warm = max(warm, HIT_PRODUCTS)  # every hit product is cached first
                reqs = requests_for(scenario, warm + count, tokens)
                run_ = load(gateway.url, c, reqs, warm, sizes.max_seconds)
                measured[(scenario, c)] = run_
                result.runs.setdefault((scenario, c), []).append(run_)
            for c in concurrencies:
                empty = measured[("Empty", c)].rps
                result.ratios.setdefault(c, []).append(measured[("GetProduct hit", c)].rps / empty)
    finally:
        gateway.stop()
        cache.close()
    return result
