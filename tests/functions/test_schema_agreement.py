"""The OpenAPI document and the functions agree: every body docs/openapi.json allows for a new
product or a new order is accepted, not refused as invalid (400). Schemathesis generates the
bodies from the document (positive mode: schema-valid only, whole-number floats such as
`52.0` for an integer included); the real functions answer them as `make invoke` would.

An order's product ids are those of real products (ids the schema allows but the catalog
lacks answer 404, which these tests also accept, and never 400)."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from funcmart_hosts.gateway.loader import Handler
from funcmart_hosts.gateway.template import ROOT
from tests.functions.invoking import invoke, load_event

DOCUMENT = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def bodies(path: str, method: str) -> st.SearchStrategy[Any]:
    """Schema-valid bodies of one operation of the document."""
    operation = DOCUMENT[path][method]
    return operation.as_strategy(generation_mode=GenerationMode.POSITIVE).map(
        lambda case: case.body
    )


def event(name: str, body: Any) -> dict[str, Any]:
    """The events/ file with this JSON body, from a caller and with a key of its own."""
    out = copy.deepcopy(load_event(name))
    out["body"] = json.dumps(body)
    out["isBase64Encoded"] = False
    out["headers"]["idempotency-key"] = uuid.uuid4().hex
    out["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = uuid.uuid4().hex
    return out


@pytest.fixture(scope="module")
def product_ids(handlers: dict[str, Handler]) -> list[str]:
    """Three products in one currency, with stock enough for every generated order."""
    ids = []
    for n in range(3):
        product = {
            "name": f"Schema mug {n}",
            "category": "schema",
            "price": {"amount": 100 + n, "currency": "EUR"},
            "stock": 1_000_000_000,
        }
        status, _, body = invoke(handlers["CreateProduct"], event("create_product.json", product))
        assert status == 201, body
        ids.append(body["id"])
    return ids


def test_every_schema_valid_new_product_is_created(handlers: dict[str, Handler]) -> None:
    @EXAMPLES
    @given(bodies("/products", "POST"))
    def check(body: Any) -> None:
        status, _, answer = invoke(handlers["CreateProduct"], event("create_product.json", body))
        assert status == 201, (body, answer)

    check()


def test_every_schema_valid_order_is_taken(
    handlers: dict[str, Handler], product_ids: list[str]
) -> None:
    @EXAMPLES
    @given(bodies("/orders", "POST"), st.data())
    def check(body: Any, data: st.DataObject) -> None:
        for line in body.get("lines", []):
            if data.draw(st.booleans(), label="a real product"):
                line["productId"] = data.draw(st.sampled_from(product_ids), label="product")
        status, _, answer = invoke(handlers["PlaceOrder"], event("place_order.json", body))
        lines = body.get("lines")
        if lines is None:  # from an empty cart: nothing to order
            assert status == 409, (body, answer)
        elif all(line["productId"] in product_ids for line in lines):
            assert status == 202, (body, answer)
        else:
            assert status == 404, (body, answer)

    check()
