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

import jsonschema
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


def requests(path: str, method: str) -> st.SearchStrategy[tuple[Any, dict[str, str]]]:
    """Schema-valid bodies and headers of one operation of the document."""
    operation = DOCUMENT[path][method]
    return operation.as_strategy(generation_mode=GenerationMode.POSITIVE).map(
        lambda case: (case.body, dict(case.headers or {}))
    )


def event(name: str, body: Any, key: str | None = None) -> dict[str, Any]:
    """The events/ file with this JSON body, from a caller of its own, with this
    Idempotency-Key (else a new one)."""
    out = copy.deepcopy(load_event(name))
    out["body"] = json.dumps(body)
    out["isBase64Encoded"] = False
    # the key as generated, and unique to this example (a key is one customer's anyway)
    out["headers"]["idempotency-key"] = key if key is not None else uuid.uuid4().hex
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
    @given(requests("/products", "POST"))
    def check(request: tuple[Any, dict[str, str]]) -> None:
        body = request[0]
        status, _, answer = invoke(handlers["CreateProduct"], event("create_product.json", body))
        assert status == 201, (body, answer)

    check()


def test_every_schema_valid_order_is_taken(
    handlers: dict[str, Handler], product_ids: list[str]
) -> None:
    @EXAMPLES
    @given(requests("/orders", "POST"), st.data())
    def check(request: tuple[Any, dict[str, str]], data: st.DataObject) -> None:
        body, headers = request
        key = next(v for k, v in headers.items() if k.lower() == "idempotency-key")
        for line in body.get("lines", []):
            if data.draw(st.booleans(), label="a real product"):
                line["productId"] = data.draw(st.sampled_from(product_ids), label="product")
        status, _, answer = invoke(handlers["PlaceOrder"], event("place_order.json", body, key))
        lines = body.get("lines")
        if lines is None:  # from an empty cart: nothing to order
            assert status == 409, (body, answer)
        elif all(line["productId"] in product_ids for line in lines):
            assert status == 202, (body, answer)
        else:
            assert status == 404, (body, answer)

    check()


@pytest.mark.parametrize("key", [" ", "\t", "\x01key", "key\x7f", "\u00a0"])
def test_an_idempotency_key_the_function_refuses_is_one_the_document_refuses(
    handlers: dict[str, Handler], key: str
) -> None:
    # GIVEN a key PlaceOrder refuses (blank, or holding a character that is not printable)
    body = {"fromCart": True, "paymentToken": "tok_ok"}
    status, _, answer = invoke(handlers["PlaceOrder"], event("place_order.json", body, key))
    assert status == 400, answer
    # THEN the document says so: the key is not valid against its header schema
    schema = next(
        p["schema"]
        for p in DOCUMENT.raw_schema["paths"]["/orders"]["post"]["parameters"]
        if p["name"].lower() == "idempotency-key"
    )
    assert not jsonschema.Draft202012Validator(schema).is_valid(key)
