"""Functions loaded from template.yaml with their own environment, on DynamoDB Local and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.loader import Handler, load_handler
from funcmart_hosts.gateway.template import Function, Template
from funcmart_hosts.local import provision
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.resources import Deployment
from tests.functions.invoking import DynamoCalls, EnvFor

_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@pytest.fixture(scope="session")
def tpl() -> Template:
    return template.load()


@pytest.fixture(scope="module")
def function_table(make_table: Callable[[], str]) -> str:
    """The table every function of a test module shares (its TABLE_NAME)."""
    return make_table()


@pytest.fixture(scope="module")
def deployment(
    tpl: Template,
    function_table: str,
    redis_url: str,
    dynamodb_endpoint: str,
    moto_endpoint: str,
) -> Deployment:
    """The template's resources as the local platform resolves them: the module's table on
    DynamoDB Local, the queues (created here) on moto, the test Redis."""
    settings = LocalSettings.load(
        {}, names={"Table": function_table}, stack_name=f"fn{uuid.uuid4().hex[:8]}"
    )
    deployed = Deployment(tpl, settings, redis_url, dynamodb_endpoint, moto_endpoint)
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name=settings.region)
    names = {lid: deployed.name(lid) for lid in tpl.queues}
    deployed.queues = provision.ensure_queues(sqs, tpl, names, deployed.refs())
    return deployed


@pytest.fixture(scope="module")
def env_for(deployment: Deployment, redis_url: str) -> EnvFor:
    """The environment a function gets from the template, pointed at the test services."""

    def env(fn: Function, redis: str = redis_url) -> dict[str, str]:
        return {**deployment.function_env(fn), "REDIS_URL": redis}

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
            if operation == "TransactWriteItems":
                # IAM authorizes each item of a transaction by its own action.
                for item in params.get("TransactItems", []):
                    (kind,) = item
                    recorded.calls.append((_TRANSACT_ACTIONS[kind], None))
            else:
                recorded.calls.append((operation, params.get("IndexName")))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return recorded
