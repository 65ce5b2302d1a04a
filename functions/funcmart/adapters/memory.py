"""In-memory implementations of every port, for unit tests and contract tests."""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import json
import threading
from dataclasses import replace
from typing import Any

from funcmart.domain.catalog import MAX_STOCK, Product, StockChange
from funcmart.domain.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    OutOfStock,
    VersionConflict,
)
from funcmart.ports import Page


class FakeProductRepository:
    def __init__(self) -> None:
        self._items: dict[str, Product] = {}
        self._lock = threading.Lock()

    def get(self, product_id: str) -> Product | None:
        return self._items.get(product_id)

    def add(self, product: Product) -> None:
        with self._lock:
            if product.id in self._items:
                raise Conflict(f"product {product.id} exists already")
            self._items[product.id] = product

    def save(self, product: Product, expected_version: int) -> None:
        with self._lock:
            current = self._items.get(product.id)
            if current is None or current.version != expected_version:
                raise VersionConflict(
                    f"product {product.id} changed since version {expected_version}"
                )
            self._items[product.id] = replace(product, stock=current.stock)

    def change_stock(self, product_id: str, change: StockChange, now: str) -> Product:
        with self._lock:
            current = self._items.get(product_id)
            if current is None or not current.active:
                raise NotFound(f"product {product_id} does not exist")
            if change.set_to is not None:
                stock = change.set_to
            else:
                stock = current.stock + (change.adjust_by or 0)
                if stock > MAX_STOCK:
                    raise InvalidRequest(
                        f"stock is {current.stock}; adjusting by {change.adjust_by} would "
                        f"exceed {MAX_STOCK}",
                        field="adjust",
                    )
                if stock < 0:
                    raise OutOfStock(
                        f"product {product_id} has {current.stock} in stock; cannot adjust by "
                        f"{change.adjust_by}",
                        available=current.stock,
                    )
            updated = replace(current, stock=stock, updated_at=now)
            self._items[product_id] = updated
            return updated

    def list(self, category: str | None, limit: int, cursor: str | None) -> Page[Product]:
        # Ordered and paged like the DynamoDB adapter: by "<casefolded name>#<id>", resuming
        # after the cursor's key, and refusing cursors of another listing.
        listing = f"CATEGORY#{category}" if category is not None else "CATALOG"
        active = sorted(
            (
                (_sort_key(p), p)
                for p in self._items.values()
                if p.active and (category is None or p.category == category)
            ),
            key=lambda kp: kp[0],
        )
        after = _decode_cursor(cursor, listing)
        start = bisect.bisect_right([k for k, _ in active], after) if after is not None else 0
        page = [p for _, p in active[start : start + limit]]
        more = start + limit < len(active)
        next_cursor = _encode_cursor(listing, _sort_key(page[-1])) if more and page else None
        return Page(items=page, next_cursor=next_cursor)


def _sort_key(p: Product) -> str:
    return f"{p.name.casefold()[:200]}#{p.id}"


def _encode_cursor(listing: str, after: str) -> str:
    raw = json.dumps({"listing": listing, "after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None, listing: str) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidRequest("cursor is not one this API issued", field="cursor") from exc
    if not isinstance(plain, dict) or set(plain) != {"listing", "after"}:
        raise InvalidRequest("cursor is not one this API issued", field="cursor")
    if plain["listing"] != listing or not isinstance(plain["after"], str):
        raise InvalidRequest("cursor belongs to another listing", field="cursor")
    return plain["after"]


class FakeCache:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.available = True

    def get(self, product_id: str) -> dict[str, Any] | None:
        if not self.available:
            return None
        value = self.values.get(product_id)
        return copy.deepcopy(value) if value is not None else None

    def put(self, product_id: str, value: dict[str, Any]) -> None:
        if self.available:
            self.values[product_id] = copy.deepcopy(value)

    def invalidate(self, *product_ids: str) -> None:
        for p in product_ids:
            self.values.pop(p, None)


class FakeClock:
    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def now(self) -> str:
        from datetime import UTC, datetime

        return (
            datetime.fromtimestamp(self.t, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )

    def epoch(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeIds:
    def __init__(self, prefix: str = "id") -> None:
        self._n = 0
        self._prefix = prefix
        self._lock = threading.Lock()

    def new_id(self) -> str:
        with self._lock:
            self._n += 1
            return f"{self._prefix}{self._n:06d}"
