"""PATCH /products/{productId}: change catalog fields (admin); a stale version gives 409."""

from funcmart.api.catalog import ProductOut, ProductPatch
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import catalog

deps = build().ready("products", "cache", "clock")
app = HttpFunction(deps, problems=(403, 404, 409))


@app.patch("/products/<productId>")
def update_product(productId: str, body: ProductPatch) -> Response[ProductOut]:
    product = catalog.update_product(deps, app.principal(), body.command(productId))
    return json_response(product.to_dict())


handler = app.handler
