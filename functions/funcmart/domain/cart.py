"""The cart: what a customer means to order, product ids and quantities, nothing priced.

Prices and names are never stored in the cart; they are read from the catalog whenever the
cart is shown or ordered, so a cart can never hold a stale price.

Rules:
- a quantity is 1..MAX_QUANTITY; setting a line to 0 removes it (PUT is "make it so");
- a cart holds at most MAX_LINES distinct products, the most one order may have (the store
  checks this atomically, a new product beyond it is a 409);
- only active products can be put in; a line whose product was archived since stays in the
  cart and is shown as unavailable (placing an order from it is refused until it is removed).
"""

from __future__ import annotations

from dataclasses import dataclass

from funcmart.domain.catalog import Product
from funcmart.domain.errors import InvalidRequest
from funcmart.domain.money import Money
from funcmart.domain.orders import MAX_LINES, MAX_QUANTITY, RequestedLine

__all__ = ["MAX_LINES", "MAX_QUANTITY", "Cart", "CartLine", "CartView", "check_quantity"]


def check_quantity(quantity: int) -> int:
    """0 (remove the line) or 1..MAX_QUANTITY."""
    if isinstance(quantity, bool) or not 0 <= quantity <= MAX_QUANTITY:
        raise InvalidRequest(f"quantity must be 0-{MAX_QUANTITY}", field="quantity")
    return quantity


@dataclass(frozen=True)
class Cart:
    """The stored cart: product id to quantity."""

    customer: str
    quantities: dict[str, int]

    @property
    def empty(self) -> bool:
        return not self.quantities

    def requested(self) -> list[RequestedLine]:
        return [RequestedLine(pid, q) for pid, q in sorted(self.quantities.items())]


@dataclass(frozen=True)
class CartLine:
    product_id: str
    quantity: int
    product: Product | None  # None when the product no longer exists

    @property
    def available(self) -> bool:
        return self.product is not None and self.product.active


@dataclass(frozen=True)
class CartView:
    """A cart priced from the current catalog."""

    customer: str
    lines: tuple[CartLine, ...]

    @property
    def total(self) -> Money | None:
        """The sum of the available lines; None for an empty cart or mixed currencies."""
        priced = [line for line in self.lines if line.available and line.product]
        currencies = {line.product.price.currency for line in priced if line.product}
        if len(currencies) != 1:
            return None
        total = Money(0, currencies.pop())
        for line in priced:
            assert line.product is not None
            total = total + line.product.price.times(line.quantity)
        return total

    def to_dict(self) -> dict[str, object]:
        lines: list[dict[str, object]] = []
        for line in self.lines:
            p = line.product if line.available else None
            lines.append(
                {
                    "productId": line.product_id,
                    "quantity": line.quantity,
                    "available": p is not None,
                    "name": p.name if p else None,
                    "unitPrice": p.price.to_dict() if p else None,
                    "subtotal": p.price.times(line.quantity).to_dict() if p else None,
                }
            )
        total = self.total
        return {
            "lines": lines,
            "itemCount": sum(line.quantity for line in self.lines if line.available),
            "total": total.to_dict() if total else None,
        }
