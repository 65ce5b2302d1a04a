"""Request bodies as the real functions take them, invoked as `make invoke` does (and Lambda):
any JSON media type RFC 9110 lets a client write is accepted, anything else is a 415; a body
is UTF-8 text exactly as sent or a 400; an object naming a key twice is a 400. Never a 500."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

import pytest

from funcmart_hosts.gateway.loader import Handler
from tests.functions.invoking import invoke, load_event

PRODUCT = {
    "name": "Media type mug",
    "category": "kitchen",
    "price": {"amount": 1500, "currency": "EUR"},
    "stock": 5,
}

ACCEPTED = [
    "application/json",
    "Application/JSON",
    "APPLICATION/JSON; CHARSET=UTF-8",
    "application/json;charset=utf-8",
    'application/json; charset="utf-8"',
    "application/json ; charset=utf-8 ; q=1",
    "application/vnd.api+json",
    "application/merge-patch+json",
    "application/problem+json; charset=UTF-8",
]

REFUSED = [
    "text/plain",
    "text/json",
    "application/jsonx",
    "application/json-seq",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json; charset=iso-8859-1",
    "application/json; charset=utf-16",
    "application/json, text/plain",
    "application/json; charset",
    "json",
    "application/",
    "",
]


def event_for(
    name: str, body: str | bytes, content_type: str | None, base64_encoded: bool = False
) -> dict[str, Any]:
    """The events/ file with this body and Content-Type, from a caller of its own (each gets
    a rate limit of its own)."""
    event = copy.deepcopy(load_event(name))
    if content_type is None:
        event["headers"].pop("content-type", None)
    else:
        event["headers"]["content-type"] = content_type
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
        event["isBase64Encoded"] = base64_encoded
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = uuid.uuid4().hex
    event["headers"]["idempotency-key"] = uuid.uuid4().hex
    return event


@pytest.fixture(scope="module")
def create_product(handlers: dict[str, Handler]) -> Handler:
    return handlers["CreateProduct"]


@pytest.mark.parametrize("content_type", [*ACCEPTED, None])
def test_any_json_media_type_is_accepted(create_product: Handler, content_type: str | None) -> None:
    status, _, body = invoke(
        create_product, event_for("create_product.json", json.dumps(PRODUCT), content_type)
    )
    assert status == 201, body
    assert body["name"] == PRODUCT["name"]


@pytest.mark.parametrize("content_type", REFUSED)
def test_any_other_media_type_is_415(create_product: Handler, content_type: str) -> None:
    status, headers, body = invoke(
        create_product, event_for("create_product.json", json.dumps(PRODUCT), content_type)
    )
    assert status == 415, body
    assert headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "name",
    [b"Caf\xe9 mug", b"\xff\xfe", b"\xed\xa0\x80"],
    ids=["latin-1", "bytes-ff-fe", "encoded-surrogate"],
)
def test_a_body_that_is_not_utf8_is_400_never_altered(create_product: Handler, name: bytes) -> None:
    raw = b'{"name": "' + name + b'", "category": "k", "price": {"amount": 1, "currency": "EUR"}}'
    status, _, body = invoke(
        create_product, event_for("create_product.json", raw, "application/json")
    )
    assert status == 400, body
    assert "UTF-8" in body["detail"]


def test_a_text_body_with_a_lone_surrogate_is_400(create_product: Handler) -> None:
    text = json.dumps(PRODUCT, ensure_ascii=False).replace("Media", "Media\udc80")
    status, _, body = invoke(
        create_product, event_for("create_product.json", text, "application/json")
    )
    assert status == 400, body


PRICE = '"price": {"amount": 1, "currency": "EUR"}'


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "A", "name": "B", "category": "kitchen", ' + PRICE + "}",
        '{"name": "A", "category": "k", "price": {"amount": 1, "amount": 9, "currency": "EUR"}}',
        '{"name": "A", "category": "kitchen", "stock": 1, "stock": 900, ' + PRICE + "}",
        '{"name": "A", "category": "k", "price": {"amount": NaN, "currency": "EUR"}}',
        '{"name": "A\\ud800", "category": "kitchen", ' + PRICE + "}",
    ],
    ids=["name", "nested-price", "stock", "nan", "lone-surrogate-escape"],
)
def test_a_body_that_is_not_rfc8259_json_is_400(create_product: Handler, text: str) -> None:
    status, _, body = invoke(
        create_product, event_for("create_product.json", text, "application/json")
    )
    assert status == 400, body
    assert "not valid JSON" in body["detail"]


def test_an_order_naming_its_payment_token_twice_is_400(handlers: dict[str, Handler]) -> None:
    text = (
        '{"lines": [{"productId": "00000000000000000000000000000b01", "quantity": 1}],'
        ' "paymentToken": "tok_ok", "paymentToken": "tok_declined"}'
    )
    status, _, body = invoke(
        handlers["PlaceOrder"], event_for("place_order.json", text, "application/json")
    )
    assert status == 400, body


def test_an_order_sent_as_a_json_suffix_type_is_taken(
    create_product: Handler, handlers: dict[str, Handler]
) -> None:
    status, _, product = invoke(
        create_product,
        event_for("create_product.json", json.dumps(PRODUCT), "Application/Vnd.Api+JSON"),
    )
    assert status == 201, product
    order = {"lines": [{"productId": product["id"], "quantity": 1}], "paymentToken": "tok_ok"}
    status, _, body = invoke(
        handlers["PlaceOrder"],
        event_for("place_order.json", json.dumps(order), "APPLICATION/JSON; Charset=UTF-8"),
    )
    assert status == 202, body
