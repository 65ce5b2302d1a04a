"""Scale: ListProducts and GetProduct latency with 1,000, 10,000 and 100,000 products.

Products are written straight into one table with BatchWriteItem, the catalog growing from
one size to the next; at each size the gateway answers, at concurrency 1, ListProducts (the
first page of 20 of a random category, and of the whole catalog) and GetProduct on a cache
miss (a random product, the cache emptied first), from the load generator's process.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from bench import data
from bench.backends import Backends, serve
from bench.common import median
from bench.latency import UNLIMITED, Run, load

SIZES = (1_000, 10_000, 100_000)
SCENARIOS = ("ListProducts (category)", "ListProducts (catalog)", "GetProduct miss")


@dataclass
class Result:
    sizes: tuple[int, ...]
    repeats: int
    runs: dict[tuple[str, int], list[Run]] = field(default_factory=dict)
    load_seconds: dict[int, float] = field(default_factory=dict)

    def p50(self, scenario: str, size: int) -> float:
        return median([r.p50 for r in self.runs[(scenario, size)]])

    def figure(self, scenario: str, size: int, key: str) -> float:
        return median([getattr(r, key) for r in self.runs[(scenario, size)]])

    def growth(self, scenario: str) -> float:
        """p50 at the largest size over p50 at the smallest."""
        return self.p50(scenario, self.sizes[-1]) / self.p50(scenario, self.sizes[0])


def _requests(scenario: str, size: int, count: int, rng: random.Random) -> list[list[object]]:
    out: list[list[object]] = []
    for _ in range(count):
        if scenario == "ListProducts (category)":
            path = f"/products?category={data.category(rng.randrange(data.CATEGORIES))}&limit=20"
        elif scenario == "ListProducts (catalog)":
            path = "/products?limit=20"
        else:
            path = f"/products/{data.product_id(rng.randrange(size))}"
        out.append(["GET", path, {}, ""])
    return out


def run(
    backends: Backends,
    logs: Path,
    *,
    sizes: tuple[int, ...] = SIZES,
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
    result = Result(sizes, repeats)
    rng = random.Random(6)
    loaded = 0
    try:
        for size in sizes:
            result.load_seconds[size] = data.load_products(client, table, loaded, size - loaded)
            loaded = size
            for _ in range(repeats):
                for scenario in SCENARIOS:
                    cache.flushdb()
                    reqs = _requests(scenario, size, requests + 20, rng)
                    run_ = load(gateway.url, 1, reqs, 20, 30)
                    result.runs.setdefault((scenario, size), []).append(run_)
    finally:
        gateway.stop()
        cache.close()
    return result
