"""Hypothesis strategies over the shapes functions are handed: API Gateway HTTP API (payload
2.0) events and SQS batch events, field by field, valid and not.

Each strategy starts from the schema (every field a real event carries, with values of the
right type) and then mutates it: a field dropped, or replaced by any JSON value. Bodies are
JSON of any depth (generated documents, and nesting thousands of levels deep), text, and
base64 of arbitrary bytes.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import strategies as st

# Any JSON value, nested a few levels: what a field of an event may be replaced with.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_DROP = object()  # a mutation that removes the field


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """JSON text nested to any depth, up to a little over the 64 KiB body limit."""
    depth = draw(st.integers(min_value=1, max_value=40_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"k":', "}]")]))
    leaf = json.dumps(draw(scalars))
    closed = draw(st.booleans())  # an unclosed document is malformed as well as deep
    return opener * depth + leaf + (closer * depth if closed else "")


def json_bodies() -> st.SearchStrategy[str]:
    return (
        json_values.map(json.dumps)
        | deep_json()
        | st.text(max_size=200)
        | st.dictionaries(
            st.sampled_from(["name", "priceMinor", "currency", "quantity", "lines", "version"]),
            json_values,
        ).map(json.dumps)
    )


HEADER_NAMES = [
    "content-type",
    "authorization",
    "idempotency-key",
    "if-match",
    "x-correlation-id",
    "accept",
    "cookie",
    "content-length",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
]


def headers() -> st.SearchStrategy[dict[str, str]]:
    names = st.sampled_from(HEADER_NAMES) | st.text(min_size=1, max_size=20)
    values = st.sampled_from(CONTENT_TYPES) | st.text(max_size=60)
    return st.dictionaries(names, values, max_size=6)


@st.composite
def body_fields(draw: st.DrawFn) -> dict[str, Any]:
    """body, isBase64Encoded and the content type that goes with them (or does not)."""
    kind = draw(st.sampled_from(["none", "json", "base64-json", "base64-bytes", "empty"]))
    if kind == "none":
        return {"body": None, "isBase64Encoded": False}
    if kind == "empty":
        return {"body": "", "isBase64Encoded": draw(st.booleans())}
    if kind == "json":
        return {"body": draw(json_bodies()), "isBase64Encoded": False}
    raw = draw(json_bodies()).encode() if kind == "base64-json" else draw(st.binary(max_size=300))
    text = base64.b64encode(raw).decode()
    if draw(st.booleans()):
        text = draw(st.sampled_from([text + "=", text[:-1], text + "!", "%%%"]))
    return {"body": text, "isBase64Encoded": True}


def claims() -> st.SearchStrategy[dict[str, Any] | None]:
    groups = st.sampled_from(["[admin]", "[]", "[admin other]", "admin", ""]) | st.lists(
        st.text(max_size=8), max_size=3
    )
    return st.none() | st.fixed_dictionaries(
        {"sub": st.text(min_size=1, max_size=40) | scalars},
        optional={"cognito:groups": groups, "groups": groups, "scope": st.text(max_size=20)},
    )


def paths_like(path: str) -> st.SearchStrategy[str]:
    """The route's own path, one with another id, or any path at all."""
    segments = path.strip("/").split("/")
    other_id = st.text(min_size=1, max_size=300).map(
        lambda value: "/" + "/".join([*segments[:-1], value])
    )
    return st.just(path) | other_id | st.text(max_size=40).map(lambda p: "/" + p)


@st.composite
def http_events(draw: st.DrawFn, method: str, path: str) -> dict[str, Any]:
    """An HTTP API payload 2.0 event for `method path`, then perhaps mutated."""
    raw_path = draw(paths_like(path))
    ctx: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "http": {
            "method": draw(st.just(method) | st.sampled_from(["GET", "POST", "PATCH", "TRACE"])),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": draw(st.ip_addresses().map(str) | st.text(max_size=20)),
            "userAgent": draw(st.text(max_size=20)),
        },
        "requestId": draw(st.uuids().map(str)),
        "routeKey": f"{method} {path}",
        "stage": draw(st.sampled_from(["$default", "$default", "prod"])),
        "time": "30/Nov/2026:05:00:00 +0000",
        "timeEpoch": 1_795_900_000_000,
    }
    found = draw(claims())
    if found is not None:
        ctx["authorizer"] = {"jwt": {"claims": found, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": raw_path,
        "rawQueryString": draw(st.text(max_size=40)),
        "headers": draw(headers()),
        "queryStringParameters": draw(
            st.none()
            | st.dictionaries(
                st.sampled_from(["category", "cursor", "limit", "state"]) | st.text(max_size=8),
                st.text(max_size=40) | st.integers(-5, 500).map(str),
                max_size=3,
            )
        ),
        "pathParameters": None,
        "cookies": draw(st.none() | st.lists(st.text(max_size=20), max_size=2)),
        "requestContext": ctx,
        **draw(body_fields()),
    }
    return mutate(event, draw(mutations(HTTP_FIELDS)))


HTTP_FIELDS = [
    ("version",),
    ("rawPath",),
    ("rawQueryString",),
    ("headers",),
    ("headers", "content-type"),
    ("headers", "authorization"),
    ("queryStringParameters",),
    ("pathParameters",),
    ("cookies",),
    ("body",),
    ("isBase64Encoded",),
    ("requestContext",),
    ("requestContext", "http"),
    ("requestContext", "http", "method"),
    ("requestContext", "requestId"),
    ("requestContext", "stage"),
    ("requestContext", "authorizer"),
    ("requestContext", "authorizer", "jwt"),
    ("requestContext", "authorizer", "jwt", "claims"),
    ("httpMethod",),
]

SQS_FIELDS = [
    ("messageId",),
    ("receiptHandle",),
    ("body",),
    ("attributes",),
    ("attributes", "ApproximateReceiveCount"),
    ("attributes", "SentTimestamp"),
    ("messageAttributes",),
    ("messageAttributes", "correlationId"),
    ("messageAttributes", "correlationId", "stringValue"),
    ("eventSource",),
    ("eventSourceARN",),
]


Mutation = tuple[tuple[str, ...], Any]


def mutations(fields: list[tuple[str, ...]]) -> st.SearchStrategy[list[Mutation]]:
    """Up to two fields, each dropped or replaced by any JSON value; mostly none."""
    one = st.tuples(st.sampled_from(fields), st.just(_DROP) | json_values)
    return st.one_of(st.just([]), st.just([]), st.lists(one, min_size=1, max_size=2))


def mutate(event: Any, changes: list[Mutation]) -> Any:
    out = copy.deepcopy(event)
    for path, value in changes:
        parent = out
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if value is _DROP:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(value)
    return out


def order_event_bodies() -> st.SearchStrategy[str]:
    """Bodies of queue messages: order events (well formed or nearly), and anything else."""
    event = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["OrderPlaced", "OrderPaid", "OrderFailed", "Nope"])
            | st.text(max_size=10),
            "orderId": st.text(min_size=1, max_size=40) | scalars,
        },
        optional={
            "customerId": st.text(max_size=20) | scalars,
            "correlationId": st.text(max_size=200) | scalars,
            "totalMinor": st.integers(-(2**70), 2**70) | scalars,
            "currency": st.sampled_from(["EUR", "USD", "eur", ""]) | scalars,
            "lines": json_values,
            "occurredAt": st.text(max_size=30) | scalars,
        },
    )
    return event.map(json.dumps) | json_bodies()


@st.composite
def sqs_records(draw: st.DrawFn, queue_arn: str) -> Any:
    """One record of an SQS event, from the schema, then perhaps mutated; rarely not even
    an object."""
    if draw(st.integers(0, 30)) == 0:
        return draw(json_values)
    record = {
        "messageId": draw(st.uuids().map(str)),
        "receiptHandle": draw(st.text(min_size=1, max_size=40)),
        "body": draw(order_event_bodies()),
        "attributes": {
            "ApproximateReceiveCount": draw(
                st.integers(1, 5).map(str) | st.sampled_from(["0", "-3", "1e3", "x", "99999999999"])
            ),
            "SentTimestamp": draw(st.integers(0, 2**45).map(str) | st.text(max_size=12)),
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": draw(st.integers(0, 2**45).map(str)),
        },
        "messageAttributes": draw(
            st.just({})
            | st.fixed_dictionaries(
                {
                    "correlationId": st.fixed_dictionaries(
                        {"stringValue": st.text(max_size=200), "dataType": st.just("String")}
                    )
                }
            )
        ),
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }
    return mutate(record, draw(mutations(SQS_FIELDS)))


@st.composite
def sqs_events(draw: st.DrawFn, queue_arn: str) -> Any:
    """A batch of 1 to 10 records; now and then the event itself is something else."""
    if draw(st.integers(0, 40)) == 0:
        return draw(json_values | st.fixed_dictionaries({"Records": json_values}))
    records = draw(st.lists(sqs_records(queue_arn), min_size=1, max_size=10))
    if draw(st.integers(0, 10)) == 0 and len(records) > 1:  # a redelivered duplicate
        records[-1] = copy.deepcopy(records[0])
    return {"Records": records}
