"""POST /products: add a product to the catalog (admin)."""

from funcmart.api.catalog import NewProduct, ProductOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import catalog

deps = build().ready("products", "clock", "ids")
app = HttpFunction(deps, problems=(403, 409))


@app.post("/products", status_code=201)
def create_product(body: NewProduct) -> Response[ProductOut]:
    product = catalog.create_product(deps, app.principal(), body.command())
    return json_response(product.to_dict(), 201, {"Location": f"/products/{product.id}"})


handler = app.handler
