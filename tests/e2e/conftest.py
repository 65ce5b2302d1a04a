"""The local platform, in-process, against DynamoDB Local, the real Redis and moto's SQS."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support.platforms import local_settings


@pytest.fixture(scope="module")
def platform(make_table, dynamodb_endpoint, moto_endpoint, redis_url) -> Iterator[LocalPlatform]:
    settings = local_settings("e2e", make_table(), dynamodb_endpoint, moto_endpoint, redis_url)
    with LocalPlatform(settings) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform: LocalPlatform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def auth(platform: LocalPlatform) -> Callable[..., dict[str, str]]:
    """`auth("admin")`: headers with a dev token for that role, as `make token` mints it."""
    config = default_jwt_config(load(platform.settings.template_path), platform.settings)

    def headers(role: str, sub: str | None = None) -> dict[str, str]:
        groups = ["admin"] if role == "admin" else []
        token = mint_token(platform.settings.jwt_secret, config, sub or f"e2e-{role}", groups)
        return {"Authorization": f"Bearer {token}"}

    return headers
