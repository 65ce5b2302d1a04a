"""The edge: what API Gateway does before a function runs, for platforms that have none.

The Knative adapter and the local gateway both receive plain HTTP requests. This module turns
one into the API Gateway HTTP API (payload 2.0) event the functions take, verifies the bearer
token the way the HTTP API's JWT authorizer does, and maps a function's result back to an HTTP
response, so that neither platform writes those rules itself.

Token verification follows the JWT authorizer: the token comes from the identity source (the
Authorization header, with or without "Bearer "); its signature must check out against an HS256
secret or, when a JWKS URL is given, a key of that JWKS (RSA, as API Gateway requires); `iss`
must equal the issuer; `aud` (or `client_id`) must be one of the audiences; `exp` must be in the
future (`nbf`, `iat` are checked when present); `alg: none` never passes. A failure is a 401; a
token without a scope the route requires is a 403. Verified claims reach the function at
`requestContext.authorizer.jwt.claims`, every value a string and arrays flattened to "[a b]".

Pure functions of their inputs (apart from fetching a JWKS), and free of Flask, YAML and the
template, so the Knative image carries it without the local platform's dependencies.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import jwt

if TYPE_CHECKING:
    from funcmart.adapters.metrics import InProcessMetrics

log = logging.getLogger(__name__)
HS_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "RS384", "RS512"]
# API Gateway HTTP APIs reject request payloads over 10 MB.
API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TEXT_TYPES = (
    "application/json",
    "application/xml",
    "application/javascript",
    "application/ecmascript",
    "application/graphql",
)


# ----------------------------------------------------------------------------- context


class LambdaContext:
    """The context object the Python runtime passes as the handler's second argument."""

    def __init__(
        self,
        function_name: str,
        memory_mb: int,
        timeout_seconds: float,
        invoked_function_arn: str,
        request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ------------------------------------------------------------------------------ routes


_LITERAL, _PARAM, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class Route:
    """One HTTP API route: `GET /products/{productId}`; public when it has no authorizer."""

    method: str
    path: str
    public: bool = False
    function: str = ""  # logical id of the function behind the route
    scopes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, route_key: str, public: bool = False, function: str = "") -> Route:
        method, _, path = route_key.strip().partition(" ")
        if not path.startswith("/") and path != "$default":
            raise ValueError(f"a route key looks like 'GET /path', got {route_key!r}")
        return cls(method.upper(), path, public, function)

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path.strip("/") else []

    def rank(self) -> tuple[tuple[int, ...], int]:
        """Sort key: smaller is more specific."""
        if self.path == "$default":
            return (_GREEDY + 1,), 1
        kinds = tuple(_kind(s) for s in self.segments)
        return kinds, 1 if self.method == "ANY" else 0

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters (still percent-encoded) when the route matches, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        if self.path == "$default":
            return {}
        stripped = raw_path.strip("/")
        parts = stripped.split("/") if stripped else []
        params: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            kind = _kind(seg)
            if kind == _GREEDY:
                rest = parts[i:]
                if not rest or not all(rest):
                    return None
                params[seg[1:-2]] = "/".join(rest)
                return params
            if i >= len(parts) or not parts[i]:
                return None
            if kind == _PARAM:
                params[seg[1:-1]] = parts[i]
            elif unquote(parts[i]) != seg:
                return None
        return params if len(parts) == len(self.segments) else None


def _kind(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return _GREEDY
    if segment.startswith("{") and segment.endswith("}"):
        return _PARAM
    return _LITERAL


class RouteTable:
    """Which route a request takes, as API Gateway chooses: the most specific wins, segment by
    segment (a literal before `{param}` before `{name+}`), then a named method before ANY, and
    `$default` last of all."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: (r.rank(), r.path, r.method))
        seen: dict[str, str] = {}
        for r in self.routes:
            if r.route_key in seen:
                raise ValueError(
                    f"route {r.route_key} is defined by both {seen[r.route_key]} and {r.function}"
                )
            seen[r.route_key] = r.function

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route for the request, with its path parameters."""
        for route in self.routes:  # sorted most specific first
            params = route.match(method, raw_path)
            if params is not None:
                return route, params
        return None

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)


# ------------------------------------------------------------------------------ tokens


@dataclass(frozen=True)
class JwtConfig:
    """A JWT authorizer: what `iss` must be and which audiences are accepted."""

    issuer: str
    audiences: tuple[str, ...]
    header: str = "authorization"  # from IdentitySource $request.header.<Name>


class AuthError(Exception):
    """A request the authorizer turns away."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error  # RFC 6750 error code for WWW-Authenticate
        self.description = description

    @property
    def www_authenticate(self) -> str:
        if self.error == "missing_token":
            return "Bearer"
        safe = self.description.replace('"', "'")
        return f'Bearer error="{self.error}", error_description="{safe}"'

    def response(self) -> HttpResponse:
        """What API Gateway answers: {"message": "Unauthorized"} or "Forbidden"."""
        message = "Forbidden" if self.status == 403 else "Unauthorized"
        return HttpResponse(
            self.status,
            [("Content-Type", "application/json"), ("WWW-Authenticate", self.www_authenticate)],
            json.dumps({"message": message}).encode(),
        )


@dataclass(frozen=True)
class Verified:
    claims: dict[str, Any]
    scopes: list[str] | None  # set only for routes that require scopes, as API Gateway does


def token_from(header_value: str | None) -> str:
    """The token in an Authorization header value; API Gateway accepts it with or without
    the "Bearer " prefix."""
    if not header_value or not header_value.strip():
        raise AuthError(401, "missing_token", "a bearer token is required")
    value = header_value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    if not value:
        raise AuthError(401, "invalid_token", "the bearer token is empty")
    return value


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    raw = claims.get("scp", claims.get("scope"))
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return str(raw).split() if raw else []


class TokenVerifier:
    """Verifies bearer tokens against an HS256 secret or the keys of a JWKS URL."""

    def __init__(self, secret: str | None = None, jwks_url: str | None = None) -> None:
        if not secret and not jwks_url:
            raise ValueError("a secret or a JWKS URL is needed to verify tokens")
        self._secret = secret
        self._jwks = jwt.PyJWKClient(jwks_url, timeout=5) if jwks_url else None

    def verify(
        self, token: str, config: JwtConfig, required_scopes: Sequence[str] = ()
    ) -> Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(401, "invalid_token", "the token is not a JWT") from exc
        alg = str(header.get("alg", "none"))
        allowed = JWKS_ALGORITHMS if self._jwks else HS_ALGORITHMS
        if alg not in allowed:
            raise AuthError(401, "invalid_token", f"tokens signed with {alg} are not accepted")
        claims = self._decode(token, allowed, config)
        if not _audience_ok(claims, config.audiences):
            raise AuthError(401, "invalid_token", "the token's audience is not accepted")
        if not required_scopes:
            return Verified(claims, None)
        scopes = token_scopes(claims)
        if not set(scopes) & set(required_scopes):
            raise AuthError(
                403,
                "insufficient_scope",
                f"the route needs one of the scopes {list(required_scopes)}",
            )
        return Verified(claims, scopes)

    def _decode(self, token: str, allowed: list[str], config: JwtConfig) -> dict[str, Any]:
        key: Any
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._secret
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=allowed,
                issuer=config.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError(401, "invalid_token", "the token has expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(401, "invalid_token", "the token's issuer is not accepted") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthError(401, "invalid_token", f"no key to verify the token: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(401, "invalid_token", f"the token is not valid: {exc}") from exc
        return claims


def _audience_ok(claims: Mapping[str, Any], audiences: Sequence[str]) -> bool:
    aud = claims.get("aud")
    given = aud if isinstance(aud, list) else [aud] if aud is not None else []
    if not given and claims.get("client_id") is not None:
        given = [claims["client_id"]]  # Cognito access tokens carry client_id, not aud
    return bool(set(map(str, given)) & set(audiences))


def mint_token(
    secret: str,
    config: JwtConfig,
    subject: str,
    groups: Sequence[str] = (),
    ttl_seconds: int = 3600,
    now: float | None = None,
    **extra: Any,
) -> str:
    """An HS256 token for development and tests, signed with `secret`."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "aud": config.audiences[0] if config.audiences else None,
        "sub": subject,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
        "token_use": "access",
    }
    if groups:
        claims["groups"] = list(groups)
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


def api_gateway_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """Claims as the JWT authorizer hands them on: every value a string, arrays as "[a b]",
    nested objects as JSON text, null-valued claims left out."""
    out = {}
    for name, value in claims.items():
        if value is None:
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


# ----------------------------------------------------------------- HTTP API, payload 2.0


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the edge received it; headers in arrival order, names as sent."""

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


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def json_message(status: int, message: str) -> HttpResponse:
    """API Gateway's own answers ({"message": "Not Found"} and the like)."""
    body = json.dumps({"message": message}).encode()
    return HttpResponse(status, [("Content-Type", "application/json")], body)


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


def request_id() -> str:
    """An id shaped like API Gateway's (base64 of random bytes, e.g. "JKJaXmPLvHcESHA=")."""
    return base64.b64encode(os.urandom(11)).decode()


def _request_time(now: float) -> str:
    t = datetime.fromtimestamp(now, UTC)
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"


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
    source = request.source_ip
    headers["x-forwarded-for"] = f"{forwarded}, {source}" if forwarded else source
    headers.setdefault("x-forwarded-port", str(api.port))
    headers.setdefault("x-forwarded-proto", "http")
    headers["x-amzn-trace-id"] = f"Root=1-{int(now):08x}-{os.urandom(12).hex()}"
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
        if is_text(headers.get("content-type")):
            event["body"] = request.body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    if path_parameters:
        event["pathParameters"] = {k: unquote(v) for k, v in path_parameters.items()}
    return event


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
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode must be an HTTP status, got {status!r}")
    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise MalformedResponse("headers must be an object")
    for name, value in raw_headers.items():
        headers.append((str(name), _header_value(value)))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies must be an array")
    headers.extend(("Set-Cookie", str(c)) for c in cookies)
    return HttpResponse(status, headers, _body(result.get("body"), result.get("isBase64Encoded")))


def _body(body: Any, encoded: Any) -> bytes:
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, got {type(body).__name__}")
    if encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedResponse("isBase64Encoded is set but body is not base64") from exc
    return body.encode("utf-8")


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class Edge:
    """One gateway's routes and authorizer: a request in, the event (or a refusal) out."""

    routes: RouteTable
    jwt: JwtConfig | None = None
    verifier: TokenVerifier | None = None
    api: ApiContext = field(default_factory=ApiContext)

    def event_for(self, request: HttpRequest) -> tuple[Route, dict[str, Any]] | HttpResponse:
        """The route and its event, or API Gateway's 404/401/403 answer."""
        found = self.routes.match(request.method, request.raw_path)
        if found is None:
            return json_message(404, "Not Found")
        route, params = found
        claims: dict[str, Any] | None = None
        scopes: list[str] | None = None
        if not route.public:
            if self.jwt is None or self.verifier is None:
                return json_message(401, "Unauthorized")
            try:
                token = token_from(request.header(self.jwt.header))
                verified = self.verifier.verify(token, self.jwt, route.scopes)
            except AuthError as err:
                return err.response()
            claims, scopes = verified.claims, verified.scopes
        event = http_event(
            request, route.route_key, params, api=self.api, claims=claims, scopes=scopes
        )
        return route, event

    def serve(
        self,
        request: HttpRequest,
        invoke: Callable[[Route, dict[str, Any]], Any],
        metrics: InProcessMetrics | None = None,
    ) -> HttpResponse:
        """The whole edge: route, authorize, invoke the function, map its result, count it.

        A function that raises or returns something API Gateway could not send gives API
        Gateway's 500 {"message": "Internal Server Error"}."""
        started = time.perf_counter()
        outcome = self.event_for(request)
        route_key = "unmatched"
        if isinstance(outcome, HttpResponse):
            response = outcome
        else:
            route, event = outcome
            route_key = route.route_key
            try:
                response = http_response(invoke(route, event))
            except Exception:
                log.exception("the function failed", extra={"route": route_key})
                response = json_message(500, "Internal Server Error")
        if metrics is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            metrics.incr("HttpRequests", labels={"route": route_key, "code": str(response.status)})
            metrics.observe_ms("HttpLatency", elapsed_ms, labels={"route": route_key})
        return response


# ---------------------------------------------------------------------- scheduled event


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
