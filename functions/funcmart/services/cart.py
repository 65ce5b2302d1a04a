"""Cart use cases: show, set a line, remove a line, empty it. Placing an order from the cart
is `services.orders.place_order_from_cart`."""

from __future__ import annotations

from funcmart.domain.cart import MAX_LINES, CartLine, CartView, check_quantity
from funcmart.domain.commands import SetCartItem
from funcmart.domain.errors import Conflict
from funcmart.domain.identity import Principal
from funcmart.ports import CartPorts, CartStore
from funcmart.services import catalog


def view_cart(ports: CartPorts, who: Principal) -> CartView:
    """The caller's cart with current names and prices, and its total."""
    cart = ports.carts.get(who.subject)
    ids = sorted(cart.quantities)
    found = catalog.current_products(ports.products, ports.cache, ids)
    lines = tuple(CartLine(pid, cart.quantities[pid], found.get(pid)) for pid in ids)
    return CartView(who.subject, lines)


def set_item(ports: CartPorts, who: Principal, command: SetCartItem) -> CartView:
    """Make the line for the product hold the quantity (0 removes it); only active products."""
    check_quantity(command.quantity)
    if command.quantity > 0:  # NotFound unless the product is active
        catalog.get_product(ports.products, ports.cache, command.product_id)
    if not ports.carts.set_quantity(who.subject, command.product_id, command.quantity, MAX_LINES):
        raise Conflict(
            f"the cart already holds {MAX_LINES} products, the most one order may have",
            maxLines=MAX_LINES,
        )
    return view_cart(ports, who)


def remove_item(carts: CartStore, principal: Principal, product_id: str) -> None:
    """Take a product out of the cart; removing one that is not there is not an error."""
    carts.remove(principal.subject, product_id)


def clear_cart(carts: CartStore, principal: Principal) -> None:
    """Empty the caller's cart."""
    carts.clear(principal.subject)
