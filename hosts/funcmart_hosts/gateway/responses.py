"""The HTTP response API Gateway sends for a function's result (payload format 2.0), and the
problem+json answers the gateway itself gives."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from funcmart.problems import PROBLEM_JSON, problem_body

if TYPE_CHECKING:
    pass


_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/ecmascript",
    "application/graphql",
)


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    # The headers are already as `safe_headers` leaves them (the hosts write them as they are).
    checked: bool = False


class MalformedResponse(ValueError):
    """The function's result is not a response API Gateway could send."""


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text; else it base64-encodes it."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return (
        mime.startswith("text/")
        or mime in _TEXT_TYPES
        or mime.endswith("+json")
        or mime.endswith("+xml")
    )


def http_response(result: Any) -> HttpResponse:
    """Map a function's result to the HTTP response API Gateway sends (payload format 2.0).

    A dict with a statusCode is a full response; anything else that is valid JSON is sent as
    a 200 application/json body, as API Gateway infers it."""
    if not (isinstance(result, dict) and "statusCode" in result):
        try:
            body = json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise MalformedResponse(f"the result is not JSON: {exc}") from exc
        return HttpResponse(200, [("Content-Type", "application/json")], body.encode())
    return HttpResponse(_status(result), _headers(result), _body(result), checked=True)


def _status(result: dict[str, Any]) -> int:
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an HTTP status, got {status!r}")
    return status


def _headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponse("headers must be an object")
    headers = [
        (name, header_safe(_header_value(v)))
        for name, v in raw_headers.items()
        if isinstance(name, str) and _is_token(name)
    ]
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies must be an array")
    headers.extend(("Set-Cookie", header_safe(str(c))) for c in cookies)
    return headers


def _body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, got {type(body).__name__}")
    if not result.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse("isBase64Encoded is set but body is not base64") from exc


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


# RFC 9110 token characters: what a header name may consist of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters (CR and LF among them) end a header or start a new one; what is not
# Latin-1 cannot be written at all.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")


def header_safe(value: str, limit: int = 4096) -> str:
    """A header value that cannot end its header or start another: control characters and
    anything outside Latin-1 become "?", and it is cut at `limit` characters."""
    if len(value) <= limit and value.isascii() and value.isprintable():
        return value  # the usual value, checked without a regular expression
    return _UNSAFE.sub("?", value[:limit])


def safe_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers a host may write: values made safe, names that are not tokens dropped."""
    return [(n, header_safe(v)) for n, v in headers if _is_token(n)]


@functools.lru_cache(maxsize=1024)  # names come from the functions: a handful
def _is_token(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def problem_response(
    status: int,
    title: str,
    detail: str,
    rid: str,
    headers: list[tuple[str, str]] | None = None,
) -> HttpResponse:
    body = problem_body(status, title, detail, rid).encode()
    extra = safe_headers(headers or [])
    return HttpResponse(status, [("Content-Type", PROBLEM_JSON), *extra], body, checked=True)
