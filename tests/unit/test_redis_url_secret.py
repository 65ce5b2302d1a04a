"""On AWS the Redis URL (its password inside) can come from Secrets Manager, read once at
cold start, so that it is not in the function's configuration (REDIS_URL_SECRET_ID)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from funcmart.bootstrap import Container
from funcmart.settings import Settings, SettingsError

REGION = "us-east-1"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def container(**env: str) -> Container:
    return Container(Settings.load({"TABLE_NAME": "t", "AWS_REGION": REGION, **env}))


def test_without_a_secret_the_url_is_redis_url() -> None:
    assert container(REDIS_URL="redis://cache:6379/1").redis_url == "redis://cache:6379/1"


def test_the_secret_s_url_replaces_redis_url(secrets: Any) -> None:
    url = "rediss://:s3cret@master.cache.example:6379/0"
    secrets.create_secret(Name="funcmart/redis-url", SecretString=url + "\n")
    deps = container(REDIS_URL_SECRET_ID="funcmart/redis-url")
    assert deps.redis_url == url
    assert deps.redis_client.connection_pool.connection_kwargs["host"] == "master.cache.example"


def test_a_secret_that_is_no_redis_url_stops_the_cold_start(secrets: Any) -> None:
    secrets.create_secret(Name="funcmart/redis-url", SecretString="s3cret-password-only")
    with pytest.raises(SettingsError, match="REDIS_URL_SECRET_ID") as refused:
        _ = container(REDIS_URL_SECRET_ID="funcmart/redis-url").redis_url
    assert "s3cret" not in str(refused.value)


def test_an_order_function_reads_the_secret_at_cold_start_though_it_builds_no_redis_client(
    secrets: Any,
) -> None:
    # GIVEN a Redis URL secret that is no Redis URL
    secrets.create_secret(Name="funcmart/redis-url", SecretString="s3cret-password-only")
    deps = container(REDIS_URL_SECRET_ID="funcmart/redis-url")
    # WHEN an order function readies its ports (FulfilOrder's cold start)
    # THEN the cold start stops, before any order is changed and its cache invalidated
    with pytest.raises(SettingsError, match="REDIS_URL_SECRET_ID"):
        deps.ready("order_ports")
    # AND with a good secret the URL is read then, and the client is left to its first use
    secrets.put_secret_value(SecretId="funcmart/redis-url", SecretString="redis://cache:6379/0")
    good = container(REDIS_URL_SECRET_ID="funcmart/redis-url").ready("order_ports")
    assert good.built("redis_url") == "redis://cache:6379/0"
    assert good.built("redis_client") is None
