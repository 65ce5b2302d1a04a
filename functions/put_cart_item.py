"""PUT /cart/items/{productId}: set the quantity of one product in the cart (0 removes it)."""

from funcmart.api.cart import CartItemIn, CartOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction
from funcmart.services import cart

deps = build().ready("carts", "products", "cache")
app = HttpFunction(deps, problems=(404, 409))


@app.put("/cart/items/<productId>")
def put_cart_item(productId: str, body: CartItemIn) -> CartOut:
    view = cart.set_item(
        deps.carts, deps.products, deps.cache, app.principal(), productId, body.quantity
    )
    return CartOut.model_validate(view.to_dict())


handler = app.handler
