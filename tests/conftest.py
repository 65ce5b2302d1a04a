"""Session services for the tests: DynamoDB Local, a real Redis, and moto for SQS.

Every test that names one of these fixtures talks to a real server over a real connection.
The summary at the end says which backend each suite used.
"""

from __future__ import annotations

import collections
import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse, urlunparse

import boto3
import pytest

from funcmart_hosts.gateway import template
from funcmart_hosts.local import services

REGION = "us-east-1"
TEST_REDIS_DB = int(os.environ.get("FUNCMART_TEST_REDIS_DB", "15"))
_backends: dict[str, set[str]] = collections.defaultdict(set)
_described: dict[str, str] = {}


@pytest.fixture(scope="session", autouse=True)
def aws_test_credentials() -> Iterator[None]:
    """Fake credentials so no test can ever reach a real AWS account."""
    saved = dict(os.environ)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _record_backend(request: pytest.FixtureRequest) -> None:
    suite = request.node.path.parent.name
    used = _backends[suite]  # listed even when it only uses fakes
    names = set(request.fixturenames)
    _backends[suite]
    if "dynamodb_endpoint" in names:
        used.add("DynamoDB Local")
    if "redis_url" in names:
        used.add("Redis server")
    if "moto_endpoint" in names:
        used.add("moto (SQS)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("backends")
    for name, described in sorted(_described.items()):
        terminalreporter.write_line(f"{name}: {described}")
    for suite in sorted(_backends):
        used = ", ".join(sorted(_backends[suite])) or "in-memory fakes"
        terminalreporter.write_line(f"tests/{suite}: {used}")
    from tests.support import report

    for name, line in sorted(report.LINES.items()):
        terminalreporter.write_line(f"{name}: {line}")


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """DynamoDB Local, started for this session (or FUNCMART_TEST_DYNAMODB_ENDPOINT)."""
    given = os.environ.get("FUNCMART_TEST_DYNAMODB_ENDPOINT")
    if given:
        _described["DynamoDB"] = f"given endpoint {given}"
        yield given
        return
    proc = services.start_dynamodb_local()
    _described["DynamoDB"] = f"DynamoDB Local ({services.dynamodb_local_dir().name}) at {proc.url}"
    try:
        yield proc.url
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def dynamodb_client(dynamodb_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("dynamodb", endpoint_url=dynamodb_endpoint, region_name=REGION)


@pytest.fixture(scope="session")
def make_table(dynamodb_client) -> Iterator[Callable[[], str]]:  # type: ignore[no-untyped-def]
    """Creates a fresh table from template.yaml's definition; all are deleted at the end."""
    tpl = template.load()
    made: list[str] = []

    def make() -> str:
        name = f"funcmart-test-{uuid.uuid4().hex[:10]}"
        dynamodb_client.create_table(**tpl.create_table_kwargs(name))
        dynamodb_client.get_waiter("table_exists").wait(TableName=name)
        made.append(name)
        return name

    yield make
    for name in made:
        dynamodb_client.delete_table(TableName=name)


@pytest.fixture
def table_name(make_table: Callable[[], str]) -> str:
    return make_table()


def _with_db(url: str, db: int) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: REDIS_URL (its own database, flushed), else redis-server on a spare port."""
    base = services.default_redis_url()
    started = None
    if not services.redis_answers(base):
        try:
            started = services.start_redis_server()
        except services.ServiceError as exc:
            pytest.exit(str(exc), returncode=3)
        base = started.url
    url = _with_db(base, TEST_REDIS_DB)
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    _described["Redis"] = f"{'started redis-server' if started else 'Redis'} at {url}"
    try:
        yield url
    finally:
        if started is not None:
            started.stop()


@pytest.fixture
def redis_client(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An in-process moto server, for SQS."""
    server = services.start_moto()
    _described["SQS"] = f"moto server at {server.url}"
    try:
        yield server.url
    finally:
        server.stop()
