"""GET /products/{productId}: one product, through the Redis read-through cache."""

from aws_lambda_powertools.event_handler import Response

from funcmart.api.catalog import ProductOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, json_response
from funcmart.services import catalog

deps = build().ready("products", "cache", "metrics")
app = HttpFunction(deps, problems=(404,))


@app.get("/products/<productId>")
def get_product(productId: str) -> Response[ProductOut]:
    product, hit = catalog.get_product(
        deps.products, deps.cache, productId, app.optional_principal(), deps.metrics
    )
    return json_response(product.to_dict(), headers={"X-Cache": "HIT" if hit else "MISS"})


handler = app.handler
