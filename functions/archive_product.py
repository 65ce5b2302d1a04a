"""DELETE /products/{productId}: archive a product (admin); orders keep their copy."""

from funcmart.bootstrap import build
from funcmart.domain.commands import ArchiveProduct
from funcmart.entrypoints.http import HttpFunction, Response
from funcmart.services import catalog

deps = build().ready("products", "cache", "clock")
app = HttpFunction(deps, problems=(403, 404))


@app.delete("/products/<productId>", status_code=204)
def archive_product(productId: str) -> Response[None]:
    catalog.archive_product(deps, app.principal(), ArchiveProduct(productId))
    return Response(status_code=204)


handler = app.handler
