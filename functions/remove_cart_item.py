"""DELETE /cart/items/{productId}: take one product out of the cart."""

from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response
from funcmart.services import cart

deps = build().ready("carts")
app = HttpFunction(deps)


@app.delete("/cart/items/<productId>", status_code=204)
def remove_cart_item(productId: str) -> Response[None]:
    cart.remove_item(deps.carts, app.principal(), productId)
    return Response(status_code=204)


handler = app.handler
