"""DELETE /cart: empty the caller's cart."""

from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response
from funcmart.services import cart

deps = build().ready("carts")
app = HttpFunction(deps)


@app.delete("/cart", status_code=204)
def clear_cart() -> Response[None]:
    cart.clear_cart(deps.carts, app.principal())
    return Response(status_code=204)


handler = app.handler
