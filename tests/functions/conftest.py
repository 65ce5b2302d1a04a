"""Functions loaded from template.yaml with their own environment, on DynamoDB Local and Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.client import BaseClient

from funcmart.platforms.local import template
from funcmart.platforms.local.loader import Handler, load_handler
from funcmart.platforms.local.template import Function, Template
from tests.functions.invoking import DynamoCalls, EnvFor


@pytest.fixture(scope="session")
def tpl() -> Template:
    return template.load()


@pytest.fixture(scope="module")
def function_table(make_table: Callable[[], str]) -> str:
    """The table every function of a test module shares (its TABLE_NAME)."""
    return make_table()


@pytest.fixture(scope="module")
def env_for(tpl: Template, function_table: str, redis_url: str, dynamodb_endpoint: str) -> EnvFor:
    """The environment a function gets from the template, with local stand-ins for refs."""

    def env(fn: Function, redis: str = redis_url) -> dict[str, str]:
        refs = {name: str(p.get("Default")) for name, p in tpl.raw["Parameters"].items()}
        refs.update(Table=function_table, RedisUrl=redis)
        values = {k: template.resolve(v, refs) for k, v in fn.environment.items()}
        values["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
        return values

    return env


@pytest.fixture(scope="module")
def handlers(tpl: Template, env_for: EnvFor) -> dict[str, Handler]:
    """Each function's handler, imported the way the runtime does (a cold start)."""
    return {lid: load_handler(fn, env_for(fn)) for lid, fn in tpl.functions.items()}


@pytest.fixture
def dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoCalls]:
    """Records every DynamoDB operation (and index) sent while the test runs."""
    recorded = DynamoCalls()
    original = BaseClient._make_api_call

    def recording(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            recorded.calls.append((operation, params.get("IndexName")))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    yield recorded
