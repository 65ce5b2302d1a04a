"""Cart use cases: show, set a line, remove a line, empty it. Placing an order from the cart
is `services.orders.place_order_from_cart`."""

from __future__ import annotations

from funcmart.domain.cart import MAX_LINES, CartLine, CartView, check_quantity
from funcmart.domain.errors import Conflict
from funcmart.domain.identity import Principal
from funcmart.ports import CartStore, ProductCache, ProductRepository
from funcmart.services import catalog


def view_cart(
    carts: CartStore, products: ProductRepository, cache: ProductCache, principal: Principal
) -> CartView:
    """The caller's cart with current names and prices, and its total."""
    cart = carts.get(principal.subject)
    ids = sorted(cart.quantities)
    found = catalog.current_products(products, cache, ids)
    lines = tuple(CartLine(pid, cart.quantities[pid], found.get(pid)) for pid in ids)
    return CartView(principal.subject, lines)


def set_item(
    carts: CartStore,
    products: ProductRepository,
    cache: ProductCache,
    principal: Principal,
    product_id: str,
    quantity: int,
) -> CartView:
    """Make the line for `product_id` hold `quantity` (0 removes it); only active products."""
    check_quantity(quantity)
    if quantity > 0:
        catalog.get_product(products, cache, product_id)  # NotFound unless it is active
    if not carts.set_quantity(principal.subject, product_id, quantity, MAX_LINES):
        raise Conflict(
            f"the cart already holds {MAX_LINES} products, the most one order may have",
            maxLines=MAX_LINES,
        )
    return view_cart(carts, products, cache, principal)


def remove_item(carts: CartStore, principal: Principal, product_id: str) -> None:
    """Take a product out of the cart; removing one that is not there is not an error."""
    carts.remove(principal.subject, product_id)


def clear_cart(carts: CartStore, principal: Principal) -> None:
    """Empty the caller's cart."""
    carts.clear(principal.subject)
