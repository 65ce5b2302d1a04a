"""GET /products/{productId}: one product, through the Redis read-through cache."""

from funcmart.api.catalog import ProductOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import catalog

deps = build().ready("products", "cache", "metrics")
# The hot read path: the rate limiter reads the product's cache entry in its own round trip,
# and the answer (built from the stored product) is not validated again against ProductOut.
# On an event loop (the Knative host) a hit is served from the entry's bytes, no thread.
app = HttpFunction(
    deps, problems=(404,), cached_product="productId", cached_answer=catalog.cached_answer
)


@app.get("/products/<productId>", enable_validation=False)
def get_product(productId: str) -> Response[ProductOut]:
    product, hit = catalog.get_product(
        deps.products, deps.cache, productId, app.optional_principal(), deps.metrics
    )
    return json_response(product.to_dict(), headers={"X-Cache": "HIT" if hit else "MISS"})


handler = app.handler
