"""Scale: latency as the data grows. GetProduct (cache miss) and ListProducts with 1,000,
10,000 and 100,000 products; ListOrders for a customer with 100 and one with 10,000 orders.

Every size exists at once, so that the sizes can take turns: a table per catalog size (each
served by its own gateway), and in the largest one a customer per order count. Each round
measures every size of a scenario back to back, in alternating order from round to round;
the growth is the ratio of the largest size's p50 to the smallest's within a round, then the
median over rounds, so that a machine busy with other work slows both sides of a ratio alike.
Requests come from the load generator's process: the first page of 20 of a random category
and of the whole catalog, distinct products with the cache emptied first (every answer must
be a miss), and the customer's newest 20 orders.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.backends import Backends, Platform, serve
from bench.common import median
from bench.latency import UNLIMITED, Run, _tokens, load

SIZES = (1_000, 10_000, 100_000)
ORDER_SIZES = (100, 10_000)
CONCURRENCIES = (1, 8)
PRODUCT_SCENARIOS = ("ListProducts (category)", "ListProducts (catalog)", "GetProduct miss")
ORDERS = "ListOrders (one customer)"
SCENARIOS = (*PRODUCT_SCENARIOS, ORDERS)
MISS = {"status": 200, "header": ["x-cache", "MISS"]}
OK = {"status": 200}


@dataclass
class Result:
    sizes: tuple[int, ...]
    order_sizes: tuple[int, ...]
    concurrencies: tuple[int, ...]
    repeats: int
    # one Run per round, in round order
    runs: dict[tuple[str, int, int], list[Run]] = field(default_factory=dict)
    load_seconds: dict[str, float] = field(default_factory=dict)

    def sizes_of(self, scenario: str) -> tuple[int, ...]:
        return self.order_sizes if scenario == ORDERS else self.sizes

    def figure(self, scenario: str, size: int, key: str, concurrency: int = 1) -> float:
        return median([getattr(r, key) for r in self.runs[(scenario, size, concurrency)]])

    def p50(self, scenario: str, size: int, concurrency: int = 1) -> float:
        return self.figure(scenario, size, "p50", concurrency)

    def growth(self, scenario: str, concurrency: int = 1) -> float:
        """p50 at the largest size over p50 at the smallest, within each round (the two were
        measured back to back), then the median over rounds."""
        return median(self.ratios(scenario, concurrency))

    def ratios(self, scenario: str, concurrency: int = 1) -> list[float]:
        """The growth of each round: how much the rounds disagree shows the noise."""
        sizes = self.sizes_of(scenario)
        large = self.runs[(scenario, sizes[-1], concurrency)]
        small = self.runs[(scenario, sizes[0], concurrency)]
        return [big.p50 / little.p50 for big, little in zip(large, small, strict=True)]


def _requests(
    scenario: str, size: int, count: int, rng: random.Random, token: str
) -> list[list[object]]:
    if scenario == "GetProduct miss":
        # distinct products: a product asked twice in a run would be a cache hit the second
        # time, which favours the small catalog
        picks = (
            rng.sample(range(size), count) if count <= size else rng.choices(range(size), k=count)
        )
        return [["GET", f"/products/{data.product_id(n)}", {}, ""] for n in picks]
    out: list[list[object]] = []
    for _ in range(count):
        headers: dict[str, str] = {}
        if scenario == "ListProducts (category)":
            path = f"/products?category={data.category(rng.randrange(data.CATEGORIES))}&limit=20"
        elif scenario == "ListProducts (catalog)":
            path = "/products?limit=20"
        else:
            path, headers = "/orders?limit=20", {"Authorization": f"Bearer {token}"}
        out.append(["GET", path, headers, ""])
    return out


def _load(
    client: Any, tables: dict[int, str], order_sizes: tuple[int, ...], result: Result
) -> None:
    """Every catalog size in its own table; the customers' orders in the largest one (the
    order counts differ, the table not)."""
    for size, table in tables.items():
        result.load_seconds[f"{size:,} products"] = data.load_products(client, table, 0, size)
    largest = tables[max(tables)]
    for i, n in enumerate(order_sizes):
        ids = [uuid.uuid4().hex for _ in range(n)]
        took = data.load_orders(client, largest, ids, customer=f"bench-customer-{i}")
        result.load_seconds[f"{n:,} orders"] = took


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

    client = backends.dynamodb_client()
    tables = {size: backends.make_table() for size in sizes}
    result = Result(sizes, order_sizes, concurrencies, repeats)
    _load(client, tables, order_sizes, result)
    tokens = dict(zip(order_sizes, _tokens(len(order_sizes)), strict=True))
    gateways: dict[int, Platform] = {}
    cache = redis.Redis.from_url(backends.redis_url)
    rng = random.Random(6)
    try:
        for size, table in tables.items():
            gateways[size] = serve(
                backends,
                table,
                logs,
                mode="http",
                stack=f"bench-scale-{size}",
                name=f"scale-gateway-{size}",
                parameters=UNLIMITED,
                functions=["ListProducts", "GetProduct", "ListOrders"],
            )

        def measure(scenario: str, size: int, c: int) -> None:
            url = gateways[size if scenario != ORDERS else sizes[-1]].url
            assert url is not None
            cache.flushdb()
            reqs = _requests(scenario, size, requests + 20, rng, tokens.get(size, ""))
            expect = MISS if scenario == "GetProduct miss" else OK
            run_ = load(url, c, reqs, 20, 30, expect=expect)
            if run_.errors:
                raise RuntimeError(f"{scenario} at {size:,}: {run_.errors} errors")
            result.runs.setdefault((scenario, size, c), []).append(run_)

        for round_ in range(repeats):
            for c in concurrencies:
                for scenario in SCENARIOS:
                    turn = result.sizes_of(scenario)
                    for size in turn if round_ % 2 == 0 else reversed(turn):
                        measure(scenario, size, c)
    finally:
        for gateway in gateways.values():
            gateway.stop()
        cache.close()
    return result
