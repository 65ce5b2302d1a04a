"""Scale: latency as the data grows. GetProduct (cache miss) and ListProducts with 1,000,
10,000 and 100,000 products; ListOrders for one customer with 100 and 10,000 orders.

Products and orders are written straight into one table with BatchWriteItem, growing from one
size to the next; at each size the gateway answers at concurrency 1 and 8, from the load
generator's process: the first page of 20 of a random category and of the whole catalog, a
random product with the cache emptied first, and the customer's newest 20 orders.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import data
from bench.backends import Backends, serve
from bench.common import median
from bench.latency import UNLIMITED, Run, _tokens, load

SIZES = (1_000, 10_000, 100_000)
ORDER_SIZES = (100, 10_000)
CONCURRENCIES = (1, 8)
PRODUCT_SCENARIOS = ("ListProducts (category)", "ListProducts (catalog)", "GetProduct miss")
ORDERS = "ListOrders (one customer)"
SCENARIOS = (*PRODUCT_SCENARIOS, ORDERS)


@dataclass
class Result:
    sizes: tuple[int, ...]
    order_sizes: tuple[int, ...]
    concurrencies: tuple[int, ...]
    repeats: int
    runs: dict[tuple[str, int, int], list[Run]] = field(default_factory=dict)
    load_seconds: dict[str, float] = field(default_factory=dict)

    def sizes_of(self, scenario: str) -> tuple[int, ...]:
        return self.order_sizes if scenario == ORDERS else self.sizes

    def figure(self, scenario: str, size: int, key: str, concurrency: int = 1) -> float:
        return median([getattr(r, key) for r in self.runs[(scenario, size, concurrency)]])

    def p50(self, scenario: str, size: int, concurrency: int = 1) -> float:
        return self.figure(scenario, size, "p50", concurrency)

    def growth(self, scenario: str, concurrency: int = 1) -> float:
        """p50 at the largest size over p50 at the smallest."""
        sizes = self.sizes_of(scenario)
        return self.p50(scenario, sizes[-1], concurrency) / self.p50(
            scenario, sizes[0], concurrency
        )


def _requests(
    scenario: str, size: int, count: int, rng: random.Random, token: str
) -> list[list[object]]:
    out: list[list[object]] = []
    for _ in range(count):
        headers: dict[str, str] = {}
        if scenario == "ListProducts (category)":
            path = f"/products?category={data.category(rng.randrange(data.CATEGORIES))}&limit=20"
        elif scenario == "ListProducts (catalog)":
            path = "/products?limit=20"
        elif scenario == ORDERS:
            path, headers = "/orders?limit=20", {"Authorization": f"Bearer {token}"}
        else:
            path = f"/products/{data.product_id(rng.randrange(size))}"
        out.append(["GET", path, headers, ""])
    return out


def run(
    backends: Backends,
    logs: Path,
    *,
    sizes: tuple[int, ...] = SIZES,
    order_sizes: tuple[int, ...] = ORDER_SIZES,
    concurrencies: tuple[int, ...] = CONCURRENCIES,
    requests: int = 300,
    repeats: int = 3,
) -> Result:
    import redis

    table = backends.make_table()
    client = backends.dynamodb_client()
    gateway = serve(
        backends,
        table,
        logs,
        mode="http",
        stack="bench-scale",
        name="scale-gateway",
        parameters=UNLIMITED,
    )
    assert gateway.url is not None
    cache = redis.Redis.from_url(backends.redis_url)
    result = Result(sizes, order_sizes, concurrencies, repeats)
    rng = random.Random(6)
    token = _tokens(1)[0]  # the customer bench-customer-0

    def measure(scenario: str, size: int) -> None:
        for _ in range(repeats):
            for c in concurrencies:
                cache.flushdb()
                reqs = _requests(scenario, size, requests + 20, rng, token)
                run_ = load(gateway.url, c, reqs, 20, 30)
                if run_.errors:
                    raise RuntimeError(f"{scenario} at {size:,}: {run_.errors} errors")
                result.runs.setdefault((scenario, size, c), []).append(run_)

    loaded = 0
    try:
        for size in sizes:
            took = data.load_products(client, table, loaded, size - loaded)
            result.load_seconds[f"{size:,} products"] = took
            loaded = size
            for scenario in PRODUCT_SCENARIOS:
                measure(scenario, size)
        loaded = 0
        for size in order_sizes:
            ids = [uuid.uuid4().hex for _ in range(size - loaded)]
            took = data.load_orders(client, table, ids, customer="bench-customer-0")
            result.load_seconds[f"{size:,} orders"] = took
            loaded = size
            measure(ORDERS, size)
    finally:
        gateway.stop()
        cache.close()
    return result
