"""SnapStart: the runtime hooks are registered where the Lambda runtime offers them, and do
what they claim on real clients (a real Redis, a botocore client's HTTP pool)."""

from __future__ import annotations

import gc
import importlib.util
import random
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
import redis

from funcmart.adapters import snapstart
from funcmart.bootstrap import build
from funcmart.settings import Settings


class FakeRuntimeHooks(types.ModuleType):
    """Stands for the Lambda runtime's `snapshot_restore_py`: records what is registered."""

    def __init__(self) -> None:
        super().__init__("snapshot_restore_py")
        self.before: list[Callable[[], None]] = []
        self.after: list[Callable[[], None]] = []

    def register_before_snapshot(self, fn: Callable[[], None]) -> None:
        self.before.append(fn)

    def register_after_restore(self, fn: Callable[[], None]) -> None:
        self.after.append(fn)


@pytest.fixture
def runtime_hooks(monkeypatch: pytest.MonkeyPatch) -> FakeRuntimeHooks:
    hooks = FakeRuntimeHooks()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", hooks)
    return hooks


@pytest.fixture
def no_freeze() -> Iterator[None]:
    """The hooks freeze the collector's generations: undo it for the rest of the session."""
    yield
    gc.unfreeze()


def _settings(redis_url: str) -> Settings:
    return Settings.load({}, table_name="t", redis_url=redis_url)


def _connected(client: redis.Redis) -> list[Any]:
    pool: Any = client.connection_pool
    return [c for c in pool._available_connections if c._sock is not None]


def test_hooks_are_registered_in_the_lambda_runtime_only(
    runtime_hooks: FakeRuntimeHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = build(_settings("redis://127.0.0.1:1/0"))
    assert runtime_hooks.before == [deps.before_snapshot]
    assert runtime_hooks.after == [deps.after_restore]

    # Off the Lambda runtime there is no such module: nothing is registered, nothing fails.
    monkeypatch.delitem(sys.modules, "snapshot_restore_py")
    assert importlib.util.find_spec("snapshot_restore_py") is None
    assert snapstart.register(deps.before_snapshot, deps.after_restore) is False


def test_after_restore_drops_pooled_redis_connections(
    runtime_hooks: FakeRuntimeHooks, redis_url: str
) -> None:
    # GIVEN a function whose Redis pool holds a connection opened before the snapshot
    deps = build(_settings(redis_url)).ready("carts")
    assert deps.redis_client.ping()
    before = _connected(deps.redis_client)
    assert len(before) == 1
    # WHEN the runtime restores the snapshot
    for hook in runtime_hooks.after:
        hook()
    # THEN that connection is closed, and the next command opens a new one
    assert _connected(deps.redis_client) == []
    assert before[0]._sock is None
    assert deps.redis_client.ping()
    assert _connected(deps.redis_client)[0] is before[0]  # reconnected, not reused
    deps.redis_client.close()


def test_after_restore_closes_the_botocore_pools_and_reseeds(
    runtime_hooks: FakeRuntimeHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    sqs: Any = botocore.session.get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:1"
    )
    monkeypatch.setattr(sqs._endpoint.http_session, "close", lambda: closed.append("sqs"))
    settings = Settings.load(
        {},
        table_name="t",
        redis_url="redis://127.0.0.1:1/0",
        dynamodb_endpoint="http://127.0.0.1:1",
    )
    deps = build(settings, sqs_client=sqs).ready("redis", "tables")
    table_client: Any = deps.tables.connection.client
    monkeypatch.setattr(
        table_client._endpoint.http_session, "close", lambda: closed.append("dynamodb")
    )
    deps.redis.breaker.trip()
    random.seed(7)
    drawn = random.random()

    random.seed(7)
    for hook in runtime_hooks.after:
        hook()

    assert sorted(closed) == ["dynamodb", "sqs"]
    assert random.random() != drawn  # not the sequence the snapshot was taken with
    assert not deps.redis.breaker.open


@pytest.mark.usefixtures("no_freeze")
def test_before_snapshot_leaves_no_connection_and_freezes_the_heap(
    runtime_hooks: FakeRuntimeHooks, redis_url: str
) -> None:
    deps = build(_settings(redis_url)).ready("carts")
    assert deps.redis_client.ping()
    gc.unfreeze()

    for hook in runtime_hooks.before:
        hook()

    assert _connected(deps.redis_client) == []
    assert gc.get_freeze_count() > 0
    deps.redis_client.close()
