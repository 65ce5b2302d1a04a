"""The local platform as the end-to-end tests run it: on the session's DynamoDB Local,
moto's SQS and a Redis, with a table and stack of its own."""

from __future__ import annotations

import uuid

from funcmart_hosts.local.config import LocalSettings


def local_settings(
    prefix: str,
    table: str,
    dynamodb_endpoint: str,
    sqs_endpoint: str,
    redis_url: str,
    **parameters: str,
) -> LocalSettings:
    """Settings for a platform on a free port; `parameters` override the template's."""
    return LocalSettings(
        port=0,
        stack_name=f"{prefix}-{uuid.uuid4().hex[:8]}",
        dynamodb_endpoint=dynamodb_endpoint,
        sqs_endpoint=sqs_endpoint,
        redis_url=redis_url,
        names={"Table": table},
        parameters=parameters,
    )
