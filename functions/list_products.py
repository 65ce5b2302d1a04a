"""GET /products: active products by category or across the catalog, one page at a time."""

from typing import Annotated

from funcmart.api.catalog import ProductOut, ProductPage
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Query
from funcmart.services import catalog

deps = build().ready("products")
app = HttpFunction(deps)


@app.get("/products")
def list_products(
    category: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> ProductPage:
    page = catalog.list_products(deps.products, category, limit, cursor)
    return ProductPage(items=[ProductOut.of(p) for p in page.items], nextCursor=page.next_cursor)


handler = app.handler
