"""PUT /products/{productId}/stock: set or adjust stock (admin); never below zero."""

from aws_lambda_powertools.event_handler import Response

from funcmart.api.catalog import ProductOut, StockUpdate
from funcmart.bootstrap import build
from funcmart.domain.catalog import StockChange
from funcmart.entrypoints.http import HttpFunction, json_response
from funcmart.services import catalog

deps = build().ready("products", "cache", "clock")
app = HttpFunction(deps, problems=(403, 404, 409))


@app.put("/products/<productId>/stock")
def set_stock(productId: str, body: StockUpdate) -> Response[ProductOut]:
    change = StockChange(set_to=body.set, adjust_by=body.adjust)
    product = catalog.set_stock(
        deps.products, deps.cache, deps.clock, app.principal(), productId, change
    )
    return json_response(product.to_dict())


handler = app.handler
