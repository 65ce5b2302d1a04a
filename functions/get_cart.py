"""GET /cart: the caller's cart, priced from the current catalog, with its total."""

from funcmart.api.cart import CartOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction
from funcmart.services import cart

deps = build().ready("carts", "products", "cache")
app = HttpFunction(deps)


@app.get("/cart")
def get_cart() -> CartOut:
    view = cart.view_cart(deps.carts, deps.products, deps.cache, app.principal())
    return CartOut.model_validate(view.to_dict())


handler = app.handler
