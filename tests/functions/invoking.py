"""Helpers to invoke a function's handler with an events/ file and judge what it did."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.loader import Handler
from funcmart_hosts.gateway.template import ROOT, Template

EVENTS = ROOT / "events"
# (function, redis_url=the test Redis) -> the environment the template gives the function
EnvFor = Callable[..., dict[str, str]]
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/funcmart"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def invoke(handler: Handler, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Status, headers and parsed JSON body (None when empty) of one invocation."""
    answer = handler(event, None)
    body = answer.get("body")
    parsed = json.loads(body) if body else None
    return answer["statusCode"], answer.get("headers") or {}, parsed


@dataclass
class DynamoCalls:
    """DynamoDB operations sent, each with the index it named (None for the table)."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)


def policy_allows(tpl: Template, function: str, operation: str, index: str | None) -> bool:
    """Whether the function's own policy allows `operation` on the table (or the index)."""
    needed = TABLE_ARN if index is None else f"{TABLE_ARN}/index/{index}"
    refs = {"Table.Arn": TABLE_ARN}
    for policy in tpl.resource(function)["Properties"].get("Policies", []):
        for st in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if st.get("Effect") != "Allow":
                continue
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if any(fnmatch.fnmatchcase(f"dynamodb:{operation}", a) for a in actions) and any(
                fnmatch.fnmatchcase(needed, template.resolve(r, refs)) for r in res
            ):
                return True
    return False


def assert_http_answer(
    event: dict[str, Any],
    status: int,
    headers: dict[str, str],
    body: Any,
    expected_status: int,
    expected_body: dict[str, Any],
) -> None:
    """The status, the content type (problem+json with the request id for errors) and the
    body fields a case expects."""
    assert status == expected_status, body
    if status == 204:
        assert body is None
    elif status >= 400:
        assert headers["Content-Type"] == "application/problem+json"
        assert body["status"] == status
        assert body["requestId"] == event["requestContext"]["requestId"]
    else:
        assert headers["Content-Type"] == "application/json"
    for key, value in expected_body.items():
        assert body[key] == value, key


def assert_calls_allowed(tpl: Template, function: str, calls: DynamoCalls) -> None:
    """Every DynamoDB call the function made is one its own policy allows."""
    for operation, index in calls.calls:
        assert policy_allows(tpl, function, operation, index), (function, operation)
