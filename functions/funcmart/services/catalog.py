"""Catalog use cases."""

from __future__ import annotations

import functools
import json
from typing import Any

from funcmart.domain import catalog
from funcmart.domain.catalog import Product
from funcmart.domain.commands import ArchiveProduct, CreateProduct, SetStock, UpdateProduct
from funcmart.domain.errors import DomainError, NotFound, VersionConflict
from funcmart.domain.identity import Principal
from funcmart.ports import CatalogPorts, Metrics, Page, ProductCache, ProductRepository

MAX_PAGE = 100


def list_products(
    products: ProductRepository, category: str | None, limit: int, cursor: str | None
) -> Page[Product]:
    """One page of active products, by category or across the catalog, ordered by name."""
    if category is not None:
        catalog.validate_category(category)
    return products.list(category, max(1, min(limit, MAX_PAGE)), cursor)


def get_product(
    products: ProductRepository,
    cache: ProductCache,
    product_id: str,
    principal: Principal | None = None,
    metrics: Metrics | None = None,
) -> tuple[Product, bool]:
    """The product and whether it came from the cache; archived ones only for admins.

    Counts CacheHits or CacheMisses when given `metrics` (an unreadable entry or Redis being
    down is a miss)."""
    catalog.require_plausible_id(product_id)
    entry = cache.get(product_id)
    cached = _from_cache(entry)
    if entry is not None and cached is None:
        cache.invalidate(product_id)  # e.g. written by another release: make room for ours
    if metrics is not None:
        metrics.incr("CacheHits" if cached is not None else "CacheMisses")
    if cached is not None:
        product, hit = cached, True
    else:
        found = products.get(product_id)
        if found is None:
            raise NotFound(f"product {product_id} does not exist")
        product, hit = found, False
        cache.put(product_id, product.to_dict())
    if not product.active and not (principal and principal.is_admin):
        raise NotFound(f"product {product_id} does not exist")
    return product, hit


def cached_answer(text: str | None, product_id: str, principal: Principal | None = None) -> bool:
    """Whether a product's cache entry, as read, may be GetProduct's answer as it is (served
    from its bytes, never decoded and encoded again): a product we can read, with this id,
    active unless the caller is an admin. Anything else takes `get_product`'s path."""
    if not text or text[0] != "{":
        return False
    entry_id, active = _read_entry(text)
    if entry_id != product_id:
        return False
    return active or bool(principal and principal.is_admin)


# An entry's text read once: the same bytes answer the same (a product's entry is the same
# text until the product changes), so a hit checks a string instead of decoding JSON.
@functools.lru_cache(maxsize=1024)
def _read_entry(text: str) -> tuple[str | None, bool]:
    """(the product's id, active) when `text` is exactly what get_product would answer for
    it; (None, False) for anything else."""
    try:
        entry = json.loads(text)
    except ValueError:
        return None, False
    product = _from_cache(entry if isinstance(entry, dict) else None)
    # Exactly what get_product would answer: no field another release left in the entry.
    if product is None or product.to_dict() != entry:
        return None, False
    return product.id, product.active


def _from_cache(entry: dict[str, Any] | None) -> Product | None:
    """The cached product, or None when there is none or it has a shape we cannot read."""
    if entry is None:
        return None
    try:
        return Product.from_dict(entry)
    except (KeyError, TypeError, ValueError, DomainError):
        return None


def create_product(ports: CatalogPorts, who: Principal, command: CreateProduct) -> Product:
    """Add a product to the catalog (admin)."""
    who.require_admin()
    product = catalog.new_product(
        ports.ids.new_id(),
        command.name,
        command.description,
        command.category,
        command.price,
        command.stock,
        ports.clock.now(),
    )
    ports.products.add(product)
    return product


def update_product(ports: CatalogPorts, who: Principal, command: UpdateProduct) -> Product:
    """Change catalog fields if nobody else changed the product since the version read."""
    who.require_admin()
    product_id, expected = command.product_id, command.expected_version
    catalog.require_plausible_id(product_id)
    current = ports.products.get(product_id)
    if current is None:
        raise NotFound(f"product {product_id} does not exist")
    if current.version != expected:
        raise VersionConflict(
            f"product {product_id} is at version {current.version}, not {expected}",
            currentVersion=current.version,
        )
    updated = catalog.apply_changes(current, command.changes, ports.clock.now())
    updated = ports.products.save(updated, expected)
    ports.cache.invalidate(product_id)
    return updated


def archive_product(ports: CatalogPorts, who: Principal, command: ArchiveProduct) -> Product:
    """Take a product out of the catalog; orders that name it keep their copy."""
    who.require_admin()
    catalog.require_plausible_id(command.product_id)
    current = ports.products.get(command.product_id)
    if current is None:
        raise NotFound(f"product {command.product_id} does not exist")
    archived = catalog.archive(current, ports.clock.now())
    archived = ports.products.save(archived, current.version)
    ports.cache.invalidate(command.product_id)
    return archived


def set_stock(ports: CatalogPorts, who: Principal, command: SetStock) -> Product:
    """Set or adjust stock atomically (admin); it never goes below zero."""
    who.require_admin()
    catalog.require_plausible_id(command.product_id)
    product = ports.products.change_stock(command.product_id, command.change, ports.clock.now())
    ports.cache.invalidate(command.product_id)
    return product


def current_products(
    products: ProductRepository, cache: ProductCache, product_ids: list[str]
) -> dict[str, Product]:
    """The products that exist (active or archived) by id, through the read-through cache."""
    found: dict[str, Product] = {}
    for product_id in product_ids:
        cached = _from_cache(cache.get(product_id))
        if cached is not None:
            found[product_id] = cached
            continue
        product = products.get(product_id)
        if product is not None:
            found[product_id] = product
            cache.put(product_id, product.to_dict())
    return found
