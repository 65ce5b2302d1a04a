"""PUT /cart/items/{productId}: set the quantity of one product in the cart (0 removes it)."""

from funcmart.api.cart import CartItemIn, CartOut
from funcmart.bootstrap import build
from funcmart.domain.commands import SetCartItem
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import cart

deps = build().ready("carts", "products", "cache")
app = HttpFunction(deps, problems=(404, 409))


@app.put("/cart/items/<productId>")
def put_cart_item(productId: str, body: CartItemIn) -> Response[CartOut]:
    view = cart.set_item(deps, app.principal(), SetCartItem(productId, body.quantity))
    return json_response(view.to_dict())


handler = app.handler
