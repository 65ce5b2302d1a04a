"""The events API Gateway and EventBridge deliver, built from what a host received: the HTTP
API's payload 2.0 event for a request and the scheduled event for a timer. SQS batches are
built in `funcmart_hosts.gateway.sqs`."""

from __future__ import annotations

import base64
import json
import os
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from funcmart.domain.identity import GROUP_CLAIMS, is_group_name

if TYPE_CHECKING:
    pass
from funcmart_hosts.gateway.responses import is_text

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the gateway received it; headers in arrival order, names as sent."""

    method: str
    target: str  # the request target: raw path and, after "?", the raw query string
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    @property
    def raw_path(self) -> str:
        return self.target.split("?", 1)[0] or "/"

    @property
    def raw_query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        """All values of a header, comma-joined, or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


def api_gateway_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as the JWT authorizer hands them on: every value a string, arrays as "[a b]",
    nested objects as JSON text, null-valued claims left out.

    Group names that are not one exact token (a space, comma, bracket or quote in them) are
    dropped from the group claims before they are flattened: in "[a b]" the name
    "Store admin" would read as "Store" and "admin"."""
    out = {}
    for name, value in claims.items():
        if value is None:
            continue
        if name in GROUP_CLAIMS:
            value = [g for g in value if is_group_name(g)] if isinstance(value, list) else value
            if isinstance(value, str) and not is_group_name(value):
                continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            out[name] = "[" + " ".join(_claim_item(v) for v in value) + "]"
        elif isinstance(value, dict):
            out[name] = json.dumps(value, separators=(",", ":"))
        else:
            out[name] = str(value)
    return out


def _claim_item(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# Request ids name a request in logs, traces and answers; they are not secrets. Drawn from a
# generator of their own, seeded from the system's randomness at start and again in a forked
# child: no system call per request (os.urandom makes one).
_IDS = random.Random()
os.register_at_fork(after_in_child=_IDS.seed)


def request_id() -> str:
    """An id shaped like API Gateway's (base64 of 88 random bits, e.g. "JKJaXmPLvHcESHA=")."""
    return base64.b64encode(_IDS.getrandbits(88).to_bytes(11, "big")).decode()


_LAST_TIME: tuple[int, str] = (-1, "")


def _request_time(now: float) -> str:
    """API Gateway's requestContext.time for `now`, formatted once per second."""
    global _LAST_TIME
    second = int(now)
    cached = _LAST_TIME
    if cached[0] == second:
        return cached[1]
    t = datetime.fromtimestamp(second, UTC)
    text = f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"
    _LAST_TIME = (second, text)
    return text


def _join_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def _query_parameters(raw_query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


@dataclass(frozen=True)
class ApiContext:
    """What API Gateway knows about itself: goes into requestContext."""

    account_id: str = "123456789012"
    api_id: str = "local"
    stage: str = "$default"
    port: int = 3000


def http_event(
    request: HttpRequest,
    route_key: str,
    path_parameters: Mapping[str, str] | None = None,
    *,
    api: ApiContext | None = None,
    claims: Mapping[str, Any] | None = None,
    scopes: list[str] | None = None,
    req_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload 2.0 event API Gateway would send for `request` on `route_key`.

    `claims` (already verified) is None for a route without an authorizer; keys that AWS
    leaves out when empty (cookies, queryStringParameters, pathParameters, body) are left out.
    """
    api = api or ApiContext()
    now = time.time() if now is None else now
    req_id = req_id or request_id()
    cookies: list[str] = []
    pairs = []
    for name, value in request.headers:
        if name.lower() == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        else:
            pairs.append((name, value))
    headers = _join_headers(pairs)
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = (
        f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    )
    headers.setdefault("x-forwarded-port", str(api.port))
    headers.setdefault("x-forwarded-proto", "http")
    # X-Ray's trace id from the request id: one random id per request, not two.
    headers["x-amzn-trace-id"] = f"Root=1-{int(now):08x}-{req_id.encode().hex()[:24]:0<24}"
    host = headers.get("host", f"127.0.0.1:{api.port}").split(":", 1)[0]

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    query = _query_parameters(request.raw_query)
    if query:
        event["queryStringParameters"] = query
    context: dict[str, Any] = {
        "accountId": api.account_id,
        "apiId": api.api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": request.raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": req_id,
        "routeKey": route_key,
        "stage": api.stage,
        "time": _request_time(now),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": api_gateway_claims(claims), "scopes": scopes}}
    event["requestContext"] = context
    if request.body:
        text = _utf8(request.body) if is_text(headers.get("content-type")) else None
        if text is not None:
            event["body"] = text
            event["isBase64Encoded"] = False
        else:
            # Bytes as sent, never altered: a text body that is not UTF-8 goes base64-encoded
            # too, for the function to refuse (a replacement character would hide it).
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    if path_parameters:
        event["pathParameters"] = {k: unquote(v) for k, v in path_parameters.items()}
    return event


def _utf8(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def scheduled_event(
    rule_arn: str,
    account_id: str,
    region: str,
    now: float | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """What EventBridge delivers for a Schedule event source."""
    t = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
