"""Every catalog function, loaded from template.yaml, invoked with each of its events/ files.

Each function runs with the environment the template gives it (TABLE_NAME pointing at a fresh
DynamoDB Local table, REDIS_URL at the test Redis). Every DynamoDB call a function makes while
handling an event must be allowed by that function's own policy in the template.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from funcmart.adapters.dynamodb.catalog import DynamoProductRepository, product_key
from funcmart.adapters.dynamodb.table import bind
from funcmart.domain.catalog import ARCHIVED, Product
from funcmart.domain.money import Money
from funcmart.entrypoints.http import async_handler
from funcmart_hosts.gateway.loader import Handler, load_handler
from funcmart_hosts.gateway.template import Template
from tests.functions.invoking import (
    DynamoCalls,
    EnvFor,
    assert_calls_allowed,
    assert_http_answer,
    invoke,
    load_event,
)

REGION = "us-east-1"

# The product the events name; every case starts with it as stored here.
SEED = Product(
    id="3f8e2b7c9a1d4e5fb6c7d8e9f0a1b2c3",
    name="The Pragmatic Programmer",
    description="From journeyman to master.",
    category="books",
    price=Money(3999, "EUR"),
    stock=10,
    created_at="2026-11-01T09:00:00.000Z",
    updated_at="2026-11-01T09:00:00.000Z",
)
# Two more books, so that a category listing has more than one page.
OTHER_BOOKS = [
    Product(
        id=f"b00c{i:028d}",
        name=name,
        description="",
        category="books",
        price=Money(2999, "EUR"),
        stock=3,
        created_at=SEED.created_at,
        updated_at=SEED.updated_at,
    )
    for i, name in enumerate(["Clean Code", "Refactoring"])
]


# ------------------------------------------------------------------- checks on answers
def listed_by_name(body: dict[str, Any], _: DynamoProductRepository) -> None:
    names = [p["name"].casefold() for p in body["items"]]
    assert names == sorted(names)
    assert all(p["status"] == "ACTIVE" for p in body["items"])


def lists_the_seed(body: dict[str, Any], products: DynamoProductRepository) -> None:
    listed_by_name(body, products)
    assert SEED.id in [p["id"] for p in body["items"]]


def first_page_of_books(body: dict[str, Any], products: DynamoProductRepository) -> None:
    listed_by_name(body, products)
    assert len(body["items"]) == 2
    assert {p["category"] for p in body["items"]} == {"books"}
    assert body["nextCursor"]


def created(body: dict[str, Any], products: DynamoProductRepository) -> None:
    stored = products.get(body["id"])
    assert stored is not None
    assert stored.to_dict() == body


def updated(body: dict[str, Any], products: DynamoProductRepository) -> None:
    stored = products.get(SEED.id)
    assert stored is not None
    assert stored.to_dict() == body


def archived(_: dict[str, Any], products: DynamoProductRepository) -> None:
    stored = products.get(SEED.id)
    assert stored is not None
    assert (stored.status, stored.version) == (ARCHIVED, 2)


def unchanged(_: dict[str, Any], products: DynamoProductRepository) -> None:
    assert products.get(SEED.id) == SEED


@dataclass(frozen=True)
class Case:
    function: str  # logical id in template.yaml
    status: int
    body: dict[str, Any] = field(default_factory=dict)  # must appear in the JSON body
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[dict[str, Any], DynamoProductRepository], None] | None = None


# Every file in events/ and what its function must answer.
CASES: dict[str, Case] = {
    "list_products.json": Case("ListProducts", 200, check=lists_the_seed),
    "list_products_by_category.json": Case("ListProducts", 200, check=first_page_of_books),
    "list_products_invalid_category.json": Case("ListProducts", 400, {"field": "category"}),
    "list_products_garbage_cursor.json": Case("ListProducts", 400, {"field": "cursor"}),
    "get_product.json": Case(
        "GetProduct", 200, SEED.to_dict(), headers={"X-Cache": "MISS"}, check=unchanged
    ),
    "get_product_not_found.json": Case("GetProduct", 404),
    "create_product.json": Case(
        "CreateProduct",
        201,
        {
            "name": "Designing Data-Intensive Applications",
            "category": "books",
            "price": {"amount": 4599, "currency": "EUR"},
            "stock": 12,
            "status": "ACTIVE",
            "version": 1,
        },
        check=created,
    ),
    "create_product_as_customer.json": Case("CreateProduct", 403),
    "create_product_invalid.json": Case("CreateProduct", 400),
    "update_product.json": Case(
        "UpdateProduct",
        200,
        {
            "id": SEED.id,
            "version": 2,
            "price": {"amount": 3499, "currency": "EUR"},
            "description": "20th anniversary edition.",
            "name": SEED.name,
            "stock": 10,
        },
        check=updated,
    ),
    "update_product_stale_version.json": Case(
        "UpdateProduct", 409, {"currentVersion": 1}, check=unchanged
    ),
    "archive_product.json": Case("ArchiveProduct", 204, check=archived),
    "archive_product_as_customer.json": Case("ArchiveProduct", 403, check=unchanged),
    "set_stock.json": Case("SetStock", 200, {"id": SEED.id, "stock": 25, "version": 1}),
    "set_stock_adjust.json": Case("SetStock", 200, {"stock": 7}),
    "set_stock_below_zero.json": Case("SetStock", 409, {"available": 10}, check=unchanged),
}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def products(function_table: str, dynamodb_endpoint: str) -> DynamoProductRepository:
    return DynamoProductRepository(bind(function_table, REGION, dynamodb_endpoint))


@pytest.fixture
def seeded(
    products: DynamoProductRepository, dynamodb_client: Any, function_table: str, redis_client: Any
) -> None:
    """The seed books as stored above, and an empty cache (redis_client empties its db)."""
    redis_client.ping()
    for product in [SEED, *OTHER_BOOKS]:
        pk, sk = product_key(product.id)
        dynamodb_client.delete_item(
            TableName=function_table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
        )
        products.add(product)


# -------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("name", sorted(CASES))
def test_events_are_named_after_their_function_and_match_its_route(
    tpl: Template, name: str
) -> None:
    fn = tpl.functions[CASES[name].function]
    assert name.removesuffix(".json").startswith(fn.module)
    event = load_event(name)
    assert event["version"] == "2.0"
    routes = {f"{r.method} {r.path}" for r in fn.routes}
    assert event["routeKey"] in routes
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    method, _, path = event["routeKey"].partition(" ")
    assert event["requestContext"]["http"]["method"] == method
    assert event["requestContext"]["http"]["path"] == event["rawPath"]
    expected_path = path
    for key, value in (event.get("pathParameters") or {}).items():
        expected_path = expected_path.replace(f"{{{key}}}", value)
    assert event["rawPath"] == expected_path
    public = next(r.public for r in fn.routes if f"{r.method} {r.path}" == event["routeKey"])
    assert ("authorizer" in event["requestContext"]) is not public


def test_every_handler_imports(handlers: dict[str, Handler], tpl: Template) -> None:
    assert set(handlers) == set(tpl.functions)
    assert all(callable(h) for h in handlers.values())


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("name", sorted(CASES))
def test_function_answers_its_event(
    name: str,
    tpl: Template,
    handlers: dict[str, Handler],
    products: DynamoProductRepository,
    dynamodb_calls: DynamoCalls,
) -> None:
    case = CASES[name]
    event = load_event(name)
    # WHEN the function handles the event
    status, headers, body = invoke(handlers[case.function], event)
    # THEN it answers as expected
    assert_http_answer(event, status, headers, body, case.status, case.body)
    for key, value in case.headers.items():
        assert headers[key] == value, key
    # AND every DynamoDB call it made is one its own policy allows
    if status not in (400, 403):  # those are refused before any read
        assert dynamodb_calls.calls
    assert_calls_allowed(tpl, case.function, dynamodb_calls)
    if case.check is not None:
        case.check(body, products)


@pytest.mark.usefixtures("seeded")
def test_writes_invalidate_what_get_product_cached(handlers: dict[str, Handler]) -> None:
    get = handlers["GetProduct"]
    # GIVEN a product read twice: the second read is a cache hit
    assert invoke(get, load_event("get_product.json"))[1]["X-Cache"] == "MISS"
    assert invoke(get, load_event("get_product.json"))[1]["X-Cache"] == "HIT"
    # WHEN its stock is set
    assert invoke(handlers["SetStock"], load_event("set_stock.json"))[0] == 200
    # THEN the next read goes to DynamoDB and sees the new stock
    status, headers, body = invoke(get, load_event("get_product.json"))
    assert (status, headers["X-Cache"], body["stock"]) == (200, "MISS", 25)
    # AND after archiving, customers no longer find it, cached or not
    assert invoke(handlers["ArchiveProduct"], load_event("archive_product.json"))[0] == 204
    assert invoke(get, load_event("get_product.json"))[0] == 404


@pytest.mark.usefixtures("seeded")
def test_a_cache_hit_is_one_call_to_redis_and_never_a_stale_one(
    handlers: dict[str, Handler], redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    get = handlers["GetProduct"]
    client = get.__self__.deps.redis.client  # type: ignore[attr-defined]
    sent: list[str] = []
    send = client.execute_command

    def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return send(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    # GIVEN the product cached by a first read
    assert invoke(get, load_event("get_product.json"))[1]["X-Cache"] == "MISS"
    assert invoke(get, load_event("get_product.json"))[1]["X-Cache"] == "HIT"
    sent.clear()
    # WHEN it is read again
    status, headers, body = invoke(get, load_event("get_product.json"))
    # THEN the answer is a hit that took one call to Redis: the rate limiter's script
    assert (status, headers["X-Cache"], body["id"]) == (200, "HIT", SEED.id)
    assert "RateLimit-Remaining" in headers
    assert sent == ["EVALSHA"]
    # AND the next request reads the entry afresh: a change in Redis shows at once
    entry = json.loads(redis_client.get(f"product:{SEED.id}"))
    redis_client.set(f"product:{SEED.id}", json.dumps({**entry, "stock": 77}), keepttl=True)
    assert invoke(get, load_event("get_product.json"))[2]["stock"] == 77
    # AND a tombstone read ahead is a miss served from DynamoDB
    redis_client.set(f"product:{SEED.id}", "-", ex=5)
    status, headers, body = invoke(get, load_event("get_product.json"))
    assert (status, headers["X-Cache"], body["stock"]) == (200, "MISS", SEED.stock)


@pytest.mark.usefixtures("seeded")
def test_get_product_answers_from_dynamodb_when_redis_is_down(
    tpl: Template, env_for: EnvFor
) -> None:
    # GIVEN GetProduct started with a REDIS_URL where nothing listens
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fn = tpl.functions["GetProduct"]
    get = load_handler(fn, env_for(fn, redis=f"redis://127.0.0.1:{port}/0"))
    # WHEN the product is read, twice
    answers = [invoke(get, load_event("get_product.json")) for _ in range(2)]
    # THEN both reads are served from DynamoDB
    for status, headers, body in answers:
        assert (status, headers["X-Cache"], body["id"]) == (200, "MISS", SEED.id)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "name",
    ["get_product.json", "update_product.json", "archive_product.json", "set_stock.json"],
)
def test_an_id_too_long_to_be_a_key_is_not_found(
    name: str, handlers: dict[str, Handler], products: DynamoProductRepository
) -> None:
    # GIVEN an event naming a product id longer than DynamoDB accepts as a key
    event = load_event(name)
    long_id = "x" * 3000
    event["pathParameters"]["productId"] = long_id
    event["rawPath"] = event["rawPath"].replace(SEED.id, long_id)
    event["requestContext"]["http"]["path"] = event["rawPath"]
    # WHEN the function handles it
    status, _, body = invoke(handlers[CASES[name].function], event)
    # THEN the answer is a plain 404, not an internal error
    assert (status, body["title"]) == (404, "Not found")
    assert products.get(SEED.id) == SEED


# ------------------------------------------------------------ the event loop's path


def invoke_async(handler: Handler, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """One invocation through the function's async path, as the Knative host makes it."""
    answer = asyncio.run(async_handler(handler)(event, None))
    body = answer.get("body")
    return answer["statusCode"], answer.get("headers") or {}, json.loads(body) if body else None


def without_rate_limit(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if not k.lower().startswith("ratelimit")}


@pytest.mark.usefixtures("seeded")
def test_the_async_path_answers_a_hit_exactly_as_the_handler_does(
    handlers: dict[str, Handler], redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    get = handlers["GetProduct"]
    # GIVEN the product cached by a first read
    assert invoke(get, load_event("get_product.json"))[1]["X-Cache"] == "MISS"
    sync_status, sync_headers, sync_body = invoke(get, load_event("get_product.json"))
    # AND the handler's blocking path out of reach: a hit must not need it
    deps = get.__self__.deps  # type: ignore[attr-defined]

    def blocking(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("a hit on the event loop used the blocking Redis client")

    monkeypatch.setattr(deps.rate_limiter, "hit", blocking)
    monkeypatch.setattr(deps.cache, "get", blocking)
    # WHEN the event loop's path serves the same request
    status, headers, body = invoke_async(get, load_event("get_product.json"))
    # THEN the same answer: status, headers (but the budget left), body
    assert (status, headers["X-Cache"], body) == (sync_status, "HIT", sync_body)
    assert without_rate_limit(headers) == without_rate_limit(sync_headers)
    assert headers["RateLimit-Limit"] == sync_headers["RateLimit-Limit"]
    # AND the answer is the cached entry's own bytes
    answer = asyncio.run(async_handler(get)(load_event("get_product.json"), None))
    assert answer["body"] == redis_client.get(f"product:{SEED.id}")


@pytest.mark.usefixtures("seeded")
def test_the_async_path_counts_a_miss_once_and_serves_it_from_dynamodb(
    handlers: dict[str, Handler], redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    get = handlers["GetProduct"]
    invoke(get, load_event("get_product.json"))
    deps = get.__self__.deps  # type: ignore[attr-defined]
    counted: list[str] = []
    for name, limiter in (("sync", deps.rate_limiter), ("async", deps.async_rate_limiter)):
        hit = limiter.hit

        def counting(*args: Any, _hit: Any = hit, _name: str = name, **kw: Any) -> Any:
            counted.append(_name)
            return _hit(*args, **kw)

        monkeypatch.setattr(limiter, "hit", counting)
    redis_client.delete(f"product:{SEED.id}")
    # WHEN a miss goes through the async path (the handler then runs on a thread)
    status, headers, body = invoke_async(get, load_event("get_product.json"))
    # THEN it is served from DynamoDB, and the request was counted once, not twice
    assert (status, headers["X-Cache"], body["id"]) == (200, "MISS", SEED.id)
    assert counted == ["async"]
    assert "RateLimit-Remaining" in headers


@pytest.mark.usefixtures("seeded")
def test_an_entry_the_async_path_cannot_serve_as_it_is_gets_the_handlers_answer(
    handlers: dict[str, Handler], redis_client: Any
) -> None:
    get = handlers["GetProduct"]
    invoke(get, load_event("get_product.json"))
    key = f"product:{SEED.id}"
    entry = json.loads(redis_client.get(key))
    # GIVEN entries whose bytes are not the answer: archived, another product's, with a field
    # this release does not write, a tombstone, not JSON
    for stored in (
        json.dumps({**entry, "status": ARCHIVED}),
        json.dumps({**entry, "id": "p-other"}),
        json.dumps({**entry, "internal": "x"}),
        "-",
        "{not json",
    ):
        redis_client.set(key, stored, ex=60)
        expected = invoke(get, load_event("get_product.json"))
        redis_client.set(key, stored, ex=60)
        # WHEN the async path serves the same request
        status, headers, body = invoke_async(get, load_event("get_product.json"))
        # THEN the handler's own answer, never the entry's bytes
        assert (status, without_rate_limit(headers), body) == (
            expected[0],
            without_rate_limit(expected[1]),
            expected[2],
        ), stored


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["requestContext"].update(authorizer="admin"),
        lambda e: e["requestContext"].update(http=["GET"]),
        lambda e: e.update(pathParameters=None),
        lambda e: e.update(pathParameters={"productId": 7}),
        lambda e: e.update(version="1.0"),
    ],
    ids=["authorizer not an object", "http not an object", "no path", "id not text", "v1"],
)
def test_an_event_the_async_path_cannot_read_gets_the_handlers_answer(
    handlers: dict[str, Handler], change: Callable[[dict[str, Any]], None]
) -> None:
    get = handlers["GetProduct"]
    invoke(get, load_event("get_product.json"))  # cached
    event = load_event("get_product.json")
    change(event)
    expected = invoke(get, json.loads(json.dumps(event)))
    # THEN the same answer as the handler gives it (a 400 for a malformed event)
    status, _headers, body = invoke_async(get, event)
    assert (status, body) == (expected[0], expected[2])
