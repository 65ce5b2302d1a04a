"""API Gateway HTTP API (payload v2) events for tests that call handlers directly."""

from __future__ import annotations

import json
import uuid
from typing import Any


def http_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    sub: str | None = None,
    groups: list[str] | None = None,
    headers: dict[str, str] | None = None,
    source_ip: str = "198.51.100.7",
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "http": {"method": method, "path": path, "sourceIp": source_ip, "protocol": "HTTP/1.1"},
        "requestId": uuid.uuid4().hex,
        "routeKey": f"{method} {path}",
        "stage": "$default",
    }
    if sub is not None:
        claims: dict[str, Any] = {"sub": sub}
        if groups:
            claims["cognito:groups"] = "[" + " ".join(groups) + "]"
        ctx["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    all_headers = {"content-type": "application/json"} if body is not None else {}
    all_headers.update(headers or {})
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": ctx,
        "pathParameters": path_parameters,
        "body": json.dumps(body) if body is not None and not isinstance(body, str) else body,
        "isBase64Encoded": False,
    }


def sqs_event(
    bodies: list[str],
    queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:orders",
    *,
    receive_count: int = 1,
) -> dict[str, Any]:
    """An SQS batch as a Lambda event source mapping delivers it, one record per body, built
    by the same code the hosts use (`funcmart_hosts.gateway.sqs`)."""
    from funcmart_hosts.gateway.sqs import sqs_event as build

    messages = [
        {
            "MessageId": f"m{n}",
            "ReceiptHandle": f"r{n}",
            "Body": body,
            "Attributes": {"ApproximateReceiveCount": str(receive_count)},
        }
        for n, body in enumerate(bodies)
    ]
    return build(messages, queue_arn, queue_arn.split(":")[3])
