"""The edge: what API Gateway does before and after a function runs, for the platforms that
have no API Gateway (the local gateway and the Knative adapter share it).

- the HTTP API's routes: which route a request takes (`HttpRoute`, `Route`, `RouteTable`);
- its JWT authorizer: bearer tokens verified against an HS256 secret or a JWKS URL, claims
  handed on as API Gateway hands them on (`TokenVerifier`, `api_gateway_claims`);
- the payload 2.0 event a request becomes, and the HTTP response a result becomes
  (`http_event`, `http_response`); the Lambda context object; EventBridge scheduled events;
- `Edge.handle`: all of it for one request, with errors answered as problem+json, and every
  request counted (`HttpRequests`, `HttpLatency`) for /metrics.

Verification follows API Gateway's JWT authorizer: the token comes from the identity source
(the Authorization header, with or without "Bearer "); its signature must check out against
the HS256 secret or, when a JWKS URL is given, a key of that JWKS (RSA, as API Gateway
requires); `iss` must equal the issuer; `aud` (or `client_id`) must be one of the audiences;
`exp` must be in the future (`nbf`, `iat` are checked when present); `alg: none` never passes.
A failure is a 401; a token without a scope the route requires is a 403.

Free of Flask, YAML and the template, so the Knative image carries it without the local
platform's dependencies.
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

from funcmart.platforms.http import PROBLEM_JSON, problem_body

if TYPE_CHECKING:
    from funcmart.adapters.metrics import InProcessMetrics
    from funcmart.platforms.local.template import Template

log = logging.getLogger("funcmart.edge")
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

# ------------------------------------------------------------------------------ context


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


# ----------------------------------------------------------------- HTTP API, payload 2.0


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


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


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
    headers["x-forwarded-for"] = (
        f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
    )
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
    return HttpResponse(_status(result), _headers(result), _body(result))


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
    headers = [(str(name), _header_value(value)) for name, value in raw_headers.items()]
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies must be an array")
    headers.extend(("Set-Cookie", str(c)) for c in cookies)
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


# ------------------------------------------------------------------------------ routes


@dataclass(frozen=True)
class HttpRoute:
    method: str  # upper case; ANY matches every method
    path: str  # "/products/{productId}", "/{proxy+}" or "$default"
    public: bool
    authorizer: str | None = None  # name in the HttpApi's Auth.Authorizers; None when public
    scopes: tuple[str, ...] = ()  # AuthorizationScopes: the token needs one of them

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


_LITERAL, _PARAM, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class Route:
    function: str  # logical id of the function behind the route
    spec: HttpRoute

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def route_key(self) -> str:
        return self.spec.route_key

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
        # Only the leading slash goes: "/products/" is not "/products" (as on HTTP APIs).
        stripped = raw_path.removeprefix("/")
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
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: (r.rank(), r.path, r.method))
        seen: dict[str, str] = {}
        for r in self.routes:
            if r.route_key in seen:
                raise ValueError(
                    f"route {r.route_key} is defined by both {seen[r.route_key]} and {r.function}"
                )
            seen[r.route_key] = r.function

    @classmethod
    def from_template(cls, tpl: Template, functions: Iterable[str] | None = None) -> RouteTable:
        wanted = set(functions) if functions is not None else None
        return cls(
            Route(fn.logical_id, spec)
            for fn in tpl.functions.values()
            if wanted is None or fn.logical_id in wanted
            for spec in fn.routes
        )

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
    """A resolved JWT authorizer: what `iss` must be and which audiences are accepted."""

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
    def __init__(self, secret: str | None = None, jwks_url: str | None = None) -> None:
        if not secret and not jwks_url:
            raise ValueError("a dev secret or a JWKS URL is needed to verify tokens")
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
    """An HS256 dev token the local gateway accepts (and only the local gateway)."""
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


# ------------------------------------------------------------------------------ the edge


@dataclass
class Outcome:
    response: HttpResponse
    request_id: str
    function: str | None = None
    route_key: str | None = None


# invoke(route, event, request id) -> the function's result
Invoke = Callable[["Route", dict[str, Any], str], Any]


class Edge:
    """Route, authorize, build the event, invoke, map the result: one request, no sockets."""

    def __init__(
        self,
        routes: RouteTable,
        verifier: TokenVerifier | None,
        authorizers: Mapping[str, JwtConfig],
        *,
        api: ApiContext | None = None,
        metrics: InProcessMetrics | None = None,
    ) -> None:
        self.routes = routes
        self.verifier = verifier
        self.authorizers = dict(authorizers)
        self.api = api or ApiContext()
        self.metrics = metrics

    def handle(
        self, request: HttpRequest, invoke: Invoke, *, claims: Mapping[str, Any] | None = None
    ) -> Outcome:
        """Answer one request. `claims` skips token verification (in-process callers that
        act as a known principal, e.g. seeding demo data)."""
        started = time.perf_counter()
        outcome = self._handle(request, invoke, claims)
        if self.metrics is not None:
            key = outcome.route_key or "unmatched"
            elapsed_ms = (time.perf_counter() - started) * 1000
            code = str(outcome.response.status)
            self.metrics.incr("HttpRequests", labels={"route": key, "code": code})
            self.metrics.observe_ms("HttpLatency", elapsed_ms, labels={"route": key})
        return outcome

    def _handle(
        self, request: HttpRequest, invoke: Invoke, claims: Mapping[str, Any] | None
    ) -> Outcome:
        rid = request_id()
        found = self.routes.match(request.method, request.raw_path)
        if found is None:
            detail = f"no route for {request.method} {request.raw_path}"
            return Outcome(problem_response(404, "Not found", detail, rid), rid)
        route, params = found
        try:
            verified = self._authorize(route, request, claims)
        except AuthError as exc:
            title = "Authentication required" if exc.status == 401 else "Forbidden"
            headers = [("WWW-Authenticate", exc.www_authenticate)]
            response = problem_response(exc.status, title, exc.description, rid, headers)
            return Outcome(response, rid, route.function, route.route_key)
        event = http_event(
            request,
            route.route_key,
            params,
            api=self.api,
            claims=verified.claims if verified else None,
            scopes=verified.scopes if verified else None,
            req_id=rid,
        )
        response = self._invoke(invoke, route, event, rid)
        return Outcome(response, rid, route.function, route.route_key)

    def _authorize(
        self, route: Route, request: HttpRequest, claims: Mapping[str, Any] | None
    ) -> Verified | None:
        if route.spec.public:
            return None
        if claims is not None:
            return Verified(dict(claims), None)
        config = self.authorizers.get(route.spec.authorizer or "")
        if config is None or self.verifier is None:
            raise AuthError(
                401, "invalid_token", f"authorizer {route.spec.authorizer} is not a JWT authorizer"
            )
        token = token_from(request.header(config.header))
        return self.verifier.verify(token, config, route.spec.scopes)

    @staticmethod
    def _invoke(invoke: Invoke, route: Route, event: dict[str, Any], rid: str) -> HttpResponse:
        try:
            result = invoke(route, event, rid)
        except Exception:
            log.exception("%s raised on %s (request %s)", route.function, route.route_key, rid)
            return problem_response(
                500, "Internal error", f"the function {route.function} failed; see its log", rid
            )
        try:
            return http_response(result)
        except MalformedResponse as exc:
            log.error("%s returned a malformed response (request %s): %s", route.function, rid, exc)
            return problem_response(
                502,
                "Bad gateway",
                f"the function {route.function} returned a malformed response",
                rid,
            )


def problem_response(
    status: int,
    title: str,
    detail: str,
    rid: str,
    headers: list[tuple[str, str]] | None = None,
) -> HttpResponse:
    body = problem_body(status, title, detail, rid).encode()
    return HttpResponse(status, [("Content-Type", PROBLEM_JSON), *(headers or [])], body)
