"""DynamoDB cost: read and write capacity units per operation and per order lifecycle, as
AWS bills them (computed from each call and the sizes of the items it touched), beside what
DynamoDB Local reports (ReturnConsumedCapacity=INDEXES, added to every request of the
functions' own clients by a botocore event hook; it under-charges transactions) and beside
the floor derived for an order's lifecycle (`lifecycle_floor`). Billing rules:

- reads: 4 KB per unit, 0.5 unit when eventually consistent, 1 when strongly consistent,
  2 in a transaction; a GetItem of nothing still costs the minimum, a Query rounds its
  items' total size up once, a BatchGetItem rounds each item;
- writes: 1 KB per unit (the larger of the item before and after, each read right before
  and right after the call), 2 in a transaction.

Item sizes follow DynamoDB's rules: attribute names plus values (strings in UTF-8 bytes,
numbers 1 byte per two significant digits plus 1, maps and lists 3 bytes plus 1 per element).
The floor is for the table itself; what the indexes cost is shown beside it.

The functions run in-process through the local platform (gateway without sockets for the
HTTP ones, SQS-shaped events for the consumers), against DynamoDB Local.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import data
from bench.backends import Backends
from bench.latency import UNLIMITED

OPS_READ = {"GetItem", "BatchGetItem", "Query", "TransactGetItems"}


def attribute_size(value: dict[str, Any]) -> int:
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = len(str(Decimal(v).normalize()).lstrip("-").replace(".", "").lstrip("0")) or 1
        return math.ceil(digits / 2) + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(x) for k, x in v.items())
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: x}) for x in v)
    raise ValueError(kind)


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(k.encode()) + attribute_size(v) for k, v in item.items())


@dataclass
class Call:
    function: str
    operation: str
    params: dict[str, Any]
    consumed: list[dict[str, Any]] = field(default_factory=list)
    read_sizes: list[int] = field(default_factory=list)  # items read, one size each
    write_keys: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # key, factor
    # per written key (as _write_keys lists them): its size before and after the call
    write_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def table_units(self) -> float:
        return sum(
            float((c.get("Table") or {}).get("CapacityUnits", c.get("CapacityUnits", 0)))
            for c in self.consumed
        )

    @property
    def index_units(self) -> float:
        total = 0.0
        for c in self.consumed:
            for idx in (c.get("GlobalSecondaryIndexes") or {}).values():
                total += float(idx.get("CapacityUnits", 0))
        return total

    @property
    def total_units(self) -> float:
        return sum(float(c.get("CapacityUnits", 0)) for c in self.consumed)


class Recorder:
    """Adds ReturnConsumedCapacity to every DynamoDB call of a client and records the answers;
    with `size_of` (an item's size by key, read through another client), also the size of
    every item a write touches, right before and right after it."""

    def __init__(self, size_of: Callable[[dict[str, Any]], int] | None = None) -> None:
        self.calls: list[Call] = []
        self.function = "-"
        self._size_of = size_of
        self._sizes_before: list[int] = []

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "INDEXES"
        call = Call(self.function, model.name, json.loads(json.dumps(params, default=str)))
        self.calls.append(call)
        if self._size_of is not None:
            self._sizes_before = [self._size_of(key) for key, _ in _write_keys(call)]

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        call = next(c for c in reversed(self.calls) if c.operation == model.name)
        consumed = parsed.get("ConsumedCapacity") or []
        call.consumed = consumed if isinstance(consumed, list) else [consumed]
        if self._size_of is not None:
            after = [self._size_of(key) for key, _ in _write_keys(call)]
            call.write_sizes = list(zip(self._sizes_before, after, strict=True))
        if "Item" in parsed or model.name == "GetItem":
            call.read_sizes = [item_size(parsed.get("Item"))]
        elif model.name == "Query":
            call.read_sizes = [item_size(i) for i in parsed.get("Items", [])]
        elif model.name == "BatchGetItem":
            call.read_sizes = [
                item_size(i) for items in parsed.get("Responses", {}).values() for i in items
            ]


def _write_keys(call: Call) -> list[tuple[dict[str, Any], int]]:
    p = call.params
    if call.operation == "PutItem":
        return [({"pk": p["Item"]["pk"], "sk": p["Item"]["sk"]}, 1)]
    if call.operation in ("UpdateItem", "DeleteItem"):
        return [(p["Key"], 1)]
    if call.operation == "TransactWriteItems":
        out = []
        for item in p["TransactItems"]:
            ((_kind, spec),) = item.items()
            key = spec.get("Key") or {"pk": spec["Item"]["pk"], "sk": spec["Item"]["sk"]}
            out.append((key, 2))
        return out
    return []


def billed(call: Call, sizes: dict[str, int]) -> float:
    """The capacity units DynamoDB bills the table for this call."""
    p, op = call.params, call.operation
    if op == "GetItem":
        unit = 1.0 if p.get("ConsistentRead") else 0.5
        return unit * max(1, math.ceil(call.read_sizes[0] / 4096)) if call.read_sizes else unit
    if op == "Query":
        unit = 1.0 if p.get("ConsistentRead") else 0.5
        return unit * max(1, math.ceil(sum(call.read_sizes) / 4096))
    if op == "BatchGetItem":
        (spec,) = p["RequestItems"].values()
        unit = 1.0 if spec.get("ConsistentRead") else 0.5
        return unit * sum(max(1, math.ceil(s / 4096)) for s in call.read_sizes)
    total = 0.0
    for (_key, factor), size in zip(_write_keys(call), written_sizes(call, sizes), strict=True):
        total += factor * max(1, math.ceil(size / 1024))
    return total


def written_sizes(call: Call, sizes: dict[str, int]) -> list[int]:
    """What each item a write touched is billed on: the larger of its size before and after
    the call; the size at the end of the run where the call's own were not read."""
    keys = _write_keys(call)
    if len(call.write_sizes) == len(keys):
        return [max(before, after) for before, after in call.write_sizes]
    return [sizes.get(_key_id(key), 0) for key, _ in keys]


def _key_id(key: dict[str, Any]) -> str:
    return f"{key['pk']['S']}|{key['sk']['S']}"


@dataclass
class Result:
    calls: list[Call]
    sizes: dict[str, int]
    steps: dict[str, list[int]]  # step name -> indexes into calls

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for step, idxs in self.steps.items():
            for i in idxs:
                c = self.calls[i]
                kind = "read" if c.operation in OPS_READ else "write"
                out.append(
                    {
                        "step": step,
                        "function": c.function,
                        "operation": c.operation,
                        "kind": kind,
                        # a Query on an index is charged to the index, not the table
                        "table": c.total_units if c.operation == "Query" else c.table_units,
                        "indexes": 0.0 if c.operation == "Query" else c.index_units,
                        "billed": billed(c, self.sizes),
                        "keys": _keys_of(c) if kind == "write" else "",
                        "counted": not _simulator(c),
                        "items": len(c.read_sizes) if kind == "read" else len(_write_keys(c)),
                        "bytes": sum(c.read_sizes)
                        if kind == "read"
                        else sum(written_sizes(c, self.sizes)),
                    }
                )
        return out


def _simulator(call: Call) -> bool:
    """A call on the payment simulator's ledger (PAYSIM#...), which stands for a card network."""
    keys = [k for k, _ in _write_keys(call)] or [call.params.get("Key") or {}]
    return all(str((k.get("pk") or {}).get("S", "")).startswith("PAYSIM#") for k in keys)


def _keys_of(call: Call) -> str:
    """The sort keys a write touched (ORDER, PAYMENT, PRODUCT, ...), for the table."""
    names = [key["sk"]["S"].split("#", 1)[0] for key, _ in _write_keys(call)]
    return ", ".join(names)


@dataclass(frozen=True)
class FloorLine:
    step: str
    what: str
    kind: str  # read | write
    units: float


def _units(size: int, per: int) -> int:
    return max(1, math.ceil(size / per))


def lifecycle_floor(result: Result) -> list[FloorLine]:
    """The fewest units an order of one line can cost from PlaceOrder to FULFILLED, given what
    each step must do and the sizes its items have:

    - PlaceOrder must read the product (price and name; eventually consistent will do, the
      stock check is the transaction's condition) and write, atomically, the stock decrement,
      the order and the idempotency record: a transaction, 2 units per KB per item. It need
      not read the idempotency record first: the record's condition fails on a retry, and
      the failure carries the stored record (ReturnValuesOnConditionCheckFailure).
      The record is an item of its own because a key expires (TTL) while its order stays;
      deriving the order id from the key would fold it into the order item (4 units, not 6)
      at the price of keys that never expire: a design choice, not a saving we count here.
    - ProcessOrder and FulfilOrder must read the order (strongly consistent: the message
      carries only its id, and a stale read could miss a new order or charge one that was
      just cancelled) and make one conditional write of it; the payment, the shipment and
      the notification record live in the order item (one UpdateItem, 1 unit per KB of the
      item after).
    The payment simulator's ledger (PAYSIM#) stands for a card network: not counted."""

    def of(step: str, sk: str) -> int:
        """The largest item of a kind (by its sort key) the step wrote, as it was billed."""
        found = [
            size
            for i in result.steps.get(step, [])
            for (key, _), size in zip(
                _write_keys(result.calls[i]),
                written_sizes(result.calls[i], result.sizes),
                strict=True,
            )
            if key["sk"]["S"].startswith(sk) and not key["pk"]["S"].startswith("PAYSIM#")
        ]
        return max(found, default=0)

    place = "PlaceOrder"
    order, idem, product = of(place, "ORDER"), of(place, "IDEMPOTENCY"), of(place, "PRODUCT")
    # the records each step makes, wherever the code keeps them, count as part of the order
    paid = of("ProcessOrder", "ORDER") + of("ProcessOrder", "PAYMENT")
    shipped = (
        of("FulfilOrder", "ORDER") + of("FulfilOrder", "SHIPMENT")
        + of("FulfilOrder", "NOTIFICATION")
    )  # fmt: skip
    return [
        FloorLine("PlaceOrder", "read the product, eventually consistent", "read", 0.5),
        FloorLine(
            "PlaceOrder",
            "transaction: stock, order, idempotency record (2 units per KB)",
            "write",
            2.0 * (_units(product, 1024) + _units(order, 1024) + _units(idem, 1024)),
        ),
        FloorLine("ProcessOrder", "read the order, strongly consistent", "read", 1.0),
        FloorLine(
            "ProcessOrder", "order PENDING → PAID with its payment", "write",
            float(_units(paid, 1024)),
        ),
        FloorLine("FulfilOrder", "read the order, strongly consistent", "read", 1.0),
        FloorLine(
            "FulfilOrder", "order PAID → FULFILLED with its shipment and notification", "write",
            float(_units(shipped, 1024)),
        ),
    ]  # fmt: skip


def run(backends: Backends, _logs: Path) -> Result:
    os.environ.update(backends.env())
    from funcmart_hosts.gateway.events import HttpRequest
    from funcmart_hosts.gateway.sqs import sqs_event
    from funcmart_hosts.local.config import LocalSettings
    from funcmart_hosts.local.platform import LocalPlatform, ensure_credentials

    ensure_credentials()
    table = backends.make_table()
    client = backends.dynamodb_client()
    data.load_products(client, table, 0, 400)  # 40 in each category
    settings = LocalSettings(
        port=0,
        stack_name=f"cost-{uuid.uuid4().hex[:6]}",
        dynamodb_endpoint=backends.dynamodb,
        sqs_endpoint=backends.sqs,
        redis_url=backends.redis_url,
        names={"Table": table},
        parameters=UNLIMITED,
    )

    def size_of(key: dict[str, Any]) -> int:
        return item_size(client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item"))

    recorder = Recorder(size_of)
    steps: dict[str, list[int]] = {}
    from funcmart_hosts.gateway.template import load

    every = list(load(settings.template_path).functions)
    platform = LocalPlatform(
        settings, poll_queues=False, run_schedules=False, functions=every, embedded=False
    )
    platform.start()
    try:
        for lid in platform.invoker.functions:
            module = sys.modules.get(f"funcmart_fn_{lid}")
            deps = getattr(module, "deps", None)
            if deps is not None and "tables" in vars(deps):
                recorder.attach(deps.tables.connection.client)
        assert platform.gateway is not None
        gateway = platform.gateway
        admin = {"sub": "cost-admin", "groups": ["admin"]}
        customer = {"sub": "cost-customer"}

        def step(name: str, function: str, action: Any) -> Any:
            recorder.function = function
            first = len(recorder.calls)
            answer = action()
            steps[name] = list(range(first, len(recorder.calls)))
            return answer

        def http(
            method: str, path: str, body: Any = None, claims: Any = None, **headers: str
        ) -> Any:
            hdrs = [("host", "127.0.0.1"), ("content-type", "application/json")]
            hdrs += [(k.replace("_", "-").lower(), v) for k, v in headers.items()]
            raw = json.dumps(body).encode() if body is not None else b""
            out = gateway.handle(HttpRequest(method, path, hdrs, raw), claims=claims)
            assert out.response.status < 300, (path, out.response.status, out.response.body)
            return json.loads(out.response.body) if out.response.body else None

        import redis

        cache = redis.Redis.from_url(backends.redis_url)
        new = {
            "name": "Cost Product",
            "description": "A product whose writes and reads are counted.",
            "category": "cat-1",
            "price": {"amount": 1299, "currency": "EUR"},
            "stock": 100,
        }
        product = step(
            "CreateProduct", "CreateProduct", lambda: http("POST", "/products", new, admin)
        )
        pid = product["id"]
        cache.flushdb()
        step("GetProduct (cache miss)", "GetProduct", lambda: http("GET", f"/products/{pid}"))
        step("GetProduct (cache hit)", "GetProduct", lambda: http("GET", f"/products/{pid}"))
        step(
            "ListProducts (20 of a category)",
            "ListProducts",
            lambda: http("GET", "/products?category=cat-1&limit=20"),
        )
        order = step(
            "PlaceOrder",
            "PlaceOrder",
            lambda: http(
                "POST",
                "/orders",
                {"lines": [{"productId": pid, "quantity": 1}], "paymentToken": "tok_ok"},
                customer,
                idempotency_key=uuid.uuid4().hex,
            ),
        )
        oid = order["id"]
        queue = platform.deployment.queues  # type: ignore[union-attr]

        def consume(function: str, queue_id: str, kind: str) -> Any:
            body = json.dumps({"type": kind, "orderId": oid, "correlationId": "cost"})
            message = {
                "MessageId": uuid.uuid4().hex,
                "ReceiptHandle": "r",
                "Body": body,
                "Attributes": {"ApproximateReceiveCount": "1"},
                "MessageAttributes": {},
            }
            event = sqs_event([message], queue[queue_id].arn, "us-east-1")
            result = platform.invoke(function, event)
            assert not result["batchItemFailures"], result
            return result

        step(
            "ProcessOrder",
            "ProcessOrder",
            lambda: consume("ProcessOrder", "OrderPlacedQueue", "OrderPlaced"),
        )
        step(
            "FulfilOrder",
            "FulfilOrder",
            lambda: consume("FulfilOrder", "OrderPaidQueue", "OrderPaid"),
        )
        step("GetOrder", "GetOrder", lambda: http("GET", f"/orders/{oid}", claims=customer))
        cache.close()
    finally:
        platform.stop()
    sizes: dict[str, int] = {}
    for call in recorder.calls:
        for key, _ in _write_keys(call):
            if _key_id(key) not in sizes:
                got = client.get_item(TableName=table, Key=key, ConsistentRead=True)
                sizes[_key_id(key)] = item_size(got.get("Item"))
    return Result(recorder.calls, sizes, steps)


LIFECYCLE = ("PlaceOrder", "ProcessOrder", "FulfilOrder")
