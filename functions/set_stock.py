"""PUT /products/{productId}/stock: set or adjust stock (admin); never below zero."""

from funcmart.api.catalog import ProductOut, StockUpdate
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import catalog

deps = build().ready("products", "cache", "clock")
app = HttpFunction(deps, problems=(403, 404, 409))


@app.put("/products/<productId>/stock")
def set_stock(productId: str, body: StockUpdate) -> Response[ProductOut]:
    product = catalog.set_stock(deps, app.principal(), body.command(productId))
    return json_response(product.to_dict())


handler = app.handler
