"""Test data written straight into the table with BatchWriteItem (no API, no validation):
products in the exact shape the catalog adapter stores them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

NOW = "2026-01-01T00:00:00.000Z"
CATEGORIES = 10


def product_id(i: int) -> str:
    return f"bench{i:07d}"


def category(i: int) -> str:
    return f"cat-{i % CATEGORIES}"


def product_item(i: int, stock: int = 1_000_000) -> dict[str, Any]:
    pid, name = product_id(i), f"Product {i:07d}"
    sort_key = f"{name.casefold()}#{pid}"
    return {
        "pk": {"S": f"PRODUCT#{pid}"},
        "sk": {"S": "PRODUCT"},
        "name": {"S": name},
        "description": {"S": f"Benchmark product number {i}, with a short description."},
        "category": {"S": category(i)},
        "price_amount": {"N": str(100 + i % 5000)},
        "currency": {"S": "EUR"},
        "stock": {"N": str(stock)},
        "status": {"S": "ACTIVE"},
        "version": {"N": "1"},
        "created_at": {"S": NOW},
        "updated_at": {"S": NOW},
        "gsi1pk": {"S": f"CATEGORY#{category(i)}"},
        "gsi1sk": {"S": sort_key},
        "gsi2pk": {"S": "CATALOG"},
        "gsi2sk": {"S": sort_key},
    }


def _write(client: Any, table: str, items: list[dict[str, Any]], deadline: float) -> None:
    pending = [{"PutRequest": {"Item": item}} for item in items]
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError("loading products took too long")
        answer = client.batch_write_item(RequestItems={table: pending})
        pending = answer.get("UnprocessedItems", {}).get(table, [])
        if pending:
            time.sleep(0.05)


def load_products(
    client: Any, table: str, start: int, count: int, *, threads: int = 8, timeout: float = 600
) -> float:
    """Products start..start+count-1, 25 per BatchWriteItem; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    batches = [
        [product_item(i) for i in range(b, min(b + 25, start + count))]
        for b in range(start, start + count, 25)
    ]
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(_write, client, table, batch, deadline) for batch in batches]:
            future.result()
    return time.monotonic() - started


def order_item(
    order_id: str, product: int, customer: str = "bench-customer", token: str = "tok_ok"
) -> dict[str, Any]:
    """A PENDING order of one line, as PlaceOrder stores it (stock already reserved)."""
    from funcmart.adapters.dynamodb.orders import open_shard

    amount = 100 + product % 5000
    return {
        "pk": {"S": f"ORDER#{order_id}"},
        "sk": {"S": "ORDER"},
        "customer": {"S": customer},
        "status": {"S": "PENDING"},
        "lines": {
            "L": [
                {
                    "M": {
                        "product_id": {"S": product_id(product)},
                        "name": {"S": f"Product {product:07d}"},
                        "unit_amount": {"N": str(amount)},
                        "currency": {"S": "EUR"},
                        "quantity": {"N": "1"},
                    }
                }
            ]
        },
        "total_amount": {"N": str(amount)},
        "currency": {"S": "EUR"},
        "payment_token": {"S": token},
        "correlation_id": {"S": f"bench-{order_id}"},
        "created_at": {"S": NOW},
        "updated_at": {"S": NOW},
        "republish_count": {"N": "0"},
        "gsi1pk": {"S": open_shard(order_id)},
        "gsi1sk": {"S": f"{NOW}#{order_id}"},
        "gsi2pk": {"S": f"CUSTOMER#{customer}"},
        "gsi2sk": {"S": f"{NOW}#{order_id}"},
    }


def load_orders(
    client: Any,
    table: str,
    order_ids: list[str],
    *,
    token: str = "tok_ok",
    threads: int = 4,
    customer: str = "bench-customer",
) -> float:
    started = time.monotonic()
    deadline = started + 600
    batches = [
        [
            order_item(oid, n, customer=customer, token=token)
            for n, oid in enumerate(order_ids[b : b + 25], start=b)
        ]
        for b in range(0, len(order_ids), 25)
    ]
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(_write, client, table, batch, deadline) for batch in batches]:
            future.result()
    return time.monotonic() - started


def get_many(client: Any, table: str, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Items by (pk, sk), consistently read, 100 per BatchGetItem."""
    out: list[dict[str, Any]] = []
    for b in range(0, len(keys), 100):
        pending: list[dict[str, Any]] = [
            {"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys[b : b + 100]
        ]
        for _ in range(50):
            if not pending:
                break
            answer = client.batch_get_item(
                RequestItems={table: {"Keys": pending, "ConsistentRead": True}}
            )
            out.extend(answer["Responses"].get(table, []))
            pending = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
    return out
