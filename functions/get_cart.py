"""GET /cart: the caller's cart, priced from the current catalog, with its total."""

from funcmart.api.cart import CartOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import cart

deps = build().ready("carts", "products", "cache")
app = HttpFunction(deps)


@app.get("/cart")
def get_cart() -> Response[CartOut]:
    return json_response(cart.view_cart(deps, app.principal()).to_dict())


handler = app.handler
