"""The HTTP side of every function: one resolver per function, errors mapped once.

A handler module builds its app with `HttpFunction(deps)`, declares its one route, and
exports `handler = app.handler`. Every platform delivers an API Gateway HTTP API (payload v2)
event, so this module is the same on Lambda, Knative and the local platform.

Rate limiting lives here, once for every function: each request counts against its caller
(the token's `sub`, or the source IP when anonymous) in the function's route class (reads,
writes, orders) with the GCRA in Redis. Every answer carries `RateLimit-Limit`,
`RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`; a refused one is a 429 with
`Retry-After`. When Redis cannot be reached the limiter fails open: the request goes through,
the `RateLimiterFailOpen` metric counts it and a warning is logged.

A function that reads a product's cache entry names the path parameter holding the product id
(`cached_product="productId"`): the rate limiter reads that entry in its own round trip, so a
cache hit costs one call to Redis. Each request runs in a `contextvars` context of its own, so
such a read never serves another request.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import re
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

# From Powertools' submodules, `Response` and the parameter markers re-exported for the handler
# modules: its `event_handler` package would load every resolver it has (funcmart/imports.py).
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import Response as Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body as Body
from aws_lambda_powertools.event_handler.openapi.params import Header as Header
from aws_lambda_powertools.event_handler.openapi.params import Query as Query
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent

from funcmart.adapters import tracing
from funcmart.domain import errors
from funcmart.domain.identity import GROUP_CLAIMS, Principal, is_group_name, require
from funcmart.domain.ratelimit import DEFAULT_LIMITS, RateDecision, RatePolicy, parse_policy
from funcmart.entrypoints.media import json_body_problem, strict_json_loads
from funcmart.observability import Observer, correlate, trace_in_logs
from funcmart.problems import PROBLEM_JSON, problem_body
from funcmart.settings import SettingsError

if TYPE_CHECKING:
    from funcmart.bootstrap import Container

logger = Logger(service="funcmart")

_STATUS: list[tuple[type[errors.DomainError], int]] = [
    (errors.InvalidRequest, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.IdempotencyKeyReused, 422),
    (errors.DependencyUnavailable, 503),
    (errors.TransientFailure, 503),
]


def status_of(exc: errors.DomainError) -> int:
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)


def problem(
    status: int,
    title: str,
    detail: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[Any]:
    """An RFC 9457 problem+json response."""
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=problem_body(status, title, detail, request_id, **extra),
        headers=headers or {},
    )


def parse_groups(raw: Any) -> frozenset[str]:
    """Groups from a JWT claim: exact names from a list, or from API Gateway's flattened
    form "[a b]" (names separated by single spaces, which is all API Gateway writes).

    A name is a group only when it is one exact token (`is_group_name`): anything with a
    comma, a quote, a bracket or whitespace in it is ignored, never split into names. A
    plain string is one name. Our hosts drop such names before they flatten, so on every
    platform ["Store admin"] and ["billing,admin"] are not "admin"; on AWS the issuer must
    not issue names with spaces (Cognito's group names cannot have them), since API
    Gateway's "[Store admin]" cannot be told from two names.
    """
    if raw is None:
        return frozenset()
    if isinstance(raw, list | tuple):
        return frozenset(g for g in raw if is_group_name(g))
    if not isinstance(raw, str):
        return frozenset()
    if raw.startswith("[") and raw.endswith("]"):
        return frozenset(g for g in raw[1:-1].split(" ") if is_group_name(g))
    return frozenset({raw}) if is_group_name(raw) else frozenset()


def principal_from_claims(claims: dict[str, Any] | None) -> Principal | None:
    if not claims or not claims.get("sub"):
        return None
    groups = next((claims[c] for c in GROUP_CLAIMS if c in claims), None)
    return Principal(subject=str(claims["sub"]), groups=parse_groups(groups))


MAX_ISSUES = 20


def _validation_detail(errs: list[dict[str, Any]]) -> tuple[int, str, list[dict[str, Any]]]:
    invalid = next((e for e in errs if e.get("type") == "json_invalid"), None)
    if invalid is not None:
        why = str((invalid.get("ctx") or {}).get("error") or "")[:200]
        return 400, "the request body is not valid JSON" + (f": {why}" if why else ""), []
    issues = []
    # A body of ten thousand unknown keys is ten thousand issues: the answer names the first
    # MAX_ISSUES, and a field's name (the caller's own key) is cut at 100 characters.
    for e in errs[:MAX_ISSUES]:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body",)]
        if len(loc) == 2 and loc[0] == "header":  # a header by its usual name
            loc = ["-".join(w.capitalize() for w in loc[1].split("-"))]
        field = (".".join(loc) or "body")[:100]
        issues.append({"field": field, "message": str(e.get("msg", ""))[:300]})
    summary = "; ".join(f"{i['field']}: {i['message']}" for i in issues[:5])
    return 400, f"the request is not valid: {summary}", issues


@dataclass
class _Invocation:
    """What Powertools calls the current request, for one invocation."""

    event: BaseProxyEvent
    context: Any
    state: dict[str, Any] = field(default_factory=dict)


# Powertools keeps the request being resolved on the class (`BaseRouter.current_event`,
# `BaseRouter.lambda_context`) and on the resolver (`self.context`), which every thread shares.
# HttpFunction keeps them in a context variable instead, so concurrent invocations of one
# function (the Knative host's threads, the local platform's request threads) never see each
# other's request, claims included.
_invocation: ContextVar[_Invocation | None] = ContextVar("funcmart_http_invocation", default=None)
# The rate-limit decision the async path already took for this request (a 1-tuple: the
# decision, or None when the limiter failed open), so the synchronous path it falls back to
# counts the request once.
_decided: ContextVar[tuple[RateDecision | None] | None] = ContextVar(
    "funcmart_rate_decided", default=None
)
# With tracing on, whether the async path already opened this request's server span, so the
# synchronous path it falls back to records its work under that span instead of a second one.
_spanned: ContextVar[bool] = ContextVar("funcmart_http_spanned", default=False)
Handler = Callable[[dict[str, Any], Any], Any]
AsyncHandler = Callable[[dict[str, Any], Any], Awaitable[Any]]


def async_handler(handler: Handler) -> AsyncHandler:
    """How a host on an event loop calls a function: the function's own async path where it
    has one (`HttpFunction.handler_async`), else the handler on a worker thread, so the loop
    never waits on a blocking call. Lambda calls `handler` itself; this is the one place that
    decides the rest."""
    owner = getattr(handler, "__self__", None)
    own = getattr(owner, "handler_async", None)
    if own is not None and getattr(owner, "handler", None) == handler:
        return own  # type: ignore[no-any-return]

    async def threaded(event: dict[str, Any], context: Any) -> Any:
        return await asyncio.to_thread(handler, event, context)

    return threaded


class HttpFunction(APIGatewayHttpResolver):
    """A Powertools resolver with funcmart's error mapping, auth helpers and body limit;
    safe to call from several threads at once."""

    def __init__(
        self,
        deps: Container,
        *,
        problems: tuple[int, ...] = (),
        also_answers: tuple[int, ...] = (),
        replays: Callable[[Principal, str], bool] | None = None,
        cached_product: str | None = None,
        cached_answer: Callable[[str | None, str, Principal | None], bool] | None = None,
    ) -> None:
        """For the OpenAPI document: `problems`, the problem+json statuses the function's own
        rules answer with (403, 404, 409, ...; those every function can answer are added
        there); `also_answers`, statuses answered with the route's own response model.

        `replays(principal, idempotency_key)` tells whether a request would only replay a
        stored answer: such a request passes a spent rate limit, as it creates nothing.

        `cached_product` names the path parameter of a product whose cache entry the rate
        limiter reads in its own round trip; with `cached_answer(text, product_id, principal)`
        saying when that entry's text is the answer as it is, `handler_async` serves such a hit
        without a thread (a host on an event loop)."""
        super().__init__(
            enable_validation=True,
            response_validation_error_http_code=500,
            json_body_deserializer=strict_json_loads,
        )
        self.deps = deps
        self._replays = replays
        self.error_statuses = tuple(sorted(set(problems)))
        self.model_statuses = tuple(sorted(set(also_answers)))
        self.max_body_bytes = deps.settings.max_body_bytes
        self._cached_product = cached_product
        self._cached_answer = cached_answer
        self._rate_policies = _rate_policies(
            deps.settings.rate_limit_class, deps.settings.rate_limit
        )
        if any(policy is not None for policy in self._rate_policies.values()):
            deps.ready("rate_limiter", "metrics")  # at cold start, as the handler's own
        self.exception_handler(errors.DomainError)(self._domain_error)
        self.exception_handler(RequestValidationError)(self._validation_error)
        self.exception_handler(NotFoundError)(self._not_found)
        self.exception_handler(Exception)(self._unexpected)
        self._observed = Observer("http").wrap(self._handle)

    # -- per-invocation state (see _Invocation) ------------------------------------------
    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        return self._invocation().event

    @current_event.setter
    def current_event(self, value: BaseProxyEvent) -> None:
        self._invocation().event = value

    @property
    def lambda_context(self) -> Any:
        return self._invocation().context

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._invocation().context = value

    @property
    def context(self) -> dict[str, Any]:
        current = _invocation.get()
        return current.state if current is not None else self._idle_context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        current = _invocation.get()
        if current is not None:
            current.state = value
        else:  # Powertools' __init__ and route registration, before any request
            self._idle_context = value

    @staticmethod
    def _invocation() -> _Invocation:
        current = _invocation.get()
        if current is None:
            raise RuntimeError("no request is being handled")
        return current

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """Powertools' resolve, with this invocation's request in a context variable."""
        token = _invocation.set(_Invocation(self._to_proxy_event(dict(event)), context))
        try:
            return super().resolve(event, context)
        finally:
            _invocation.reset(token)

    # -- request helpers -------------------------------------------------------------
    @property
    def request_id(self) -> str | None:
        ctx = self.current_event.get("requestContext") or {}
        rid = ctx.get("requestId")
        return str(rid) if rid else None

    def principal(self) -> Principal:
        """The verified caller; 401 when the request carries no verified claims."""
        return require(self.optional_principal())

    def optional_principal(self) -> Principal | None:
        authorizer = (self.current_event.get("requestContext") or {}).get("authorizer") or {}
        claims = (authorizer.get("jwt") or {}).get("claims")
        return principal_from_claims(claims if isinstance(claims, dict) else None)

    # -- error mapping ------------------------------------------------------------------
    def _domain_error(self, exc: errors.DomainError) -> Response[Any]:
        status = status_of(exc)
        if status < 500:
            return problem(status, exc.title, exc.detail, self.request_id, **exc.extra)
        # What failed and where (an endpoint, a driver's message) goes to the log with the
        # request id; the caller gets a fixed sentence.
        retry_after = getattr(exc, "retry_after", 1)
        logger.warning(
            "dependency unavailable",
            extra={"detail": exc.detail, "error": type(exc).__name__, "requestId": self.request_id},
        )
        return problem(
            status,
            exc.title,
            f"a service this function depends on did not answer; retry in {retry_after} s",
            self.request_id,
            {"Retry-After": str(retry_after)},
        )

    def _validation_error(self, exc: RequestValidationError) -> Response[Any]:
        status, detail, issues = _validation_detail(list(exc.errors()))
        title = "Malformed request" if not issues else "Invalid request"
        field = issues[0]["field"] if len(issues) == 1 else None
        return problem(status, title, detail, self.request_id, field=field, errors=issues or None)

    def _not_found(self, _exc: NotFoundError) -> Response[Any]:
        path = self.current_event.get("rawPath", "")
        return problem(404, "Not found", f"no route for {path}", self.request_id)

    def _unexpected(self, exc: Exception) -> Response[Any]:
        if _is_store_fault(exc):
            # A store that failed or throttled outside an adapter's own translation is the
            # store's fault, not the request's: 503 with Retry-After, as any outage.
            fault = errors.DependencyUnavailable(f"{type(exc).__name__}: {exc}"[:500])
            return self._domain_error(fault)
        logger.exception("unhandled error", extra={"requestId": self.request_id})
        return problem(
            500,
            "Internal error",
            "an unexpected error occurred; it has been logged",
            self.request_id,
        )

    # -- entry point --------------------------------------------------------------------
    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The Lambda handler: body limit and content type first, then the route."""
        return self._observed(event, context)

    def _handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not tracing.enabled():
            return self._checked(event, context)
        if _spanned.get():  # under the span the async path opened (handler_async)
            trace_in_logs()
            return self._checked(event, context)
        with self._server_span(event, context) as span:
            trace_in_logs()
            response = self._checked(event, context)
            self._answered(span, event, response)
            return response

    @staticmethod
    def _server_span(event: dict[str, Any], context: Any) -> Any:
        """The request's server span (tracing on), a child of the caller's `traceparent`."""
        name, attributes = _span_of(event)
        attributes["faas.name"] = str(getattr(context, "function_name", None) or "")
        headers = event.get("headers") if isinstance(event, dict) else None
        parent = tracing.extract(headers) if isinstance(headers, dict) else None
        return tracing.span(name, "server", attributes, parent=parent)

    def _answered(self, span: Any, event: dict[str, Any], response: Any) -> None:
        """The answer's status (and the route class) on the request's span, if sampled."""
        if not tracing.recording(span):
            return
        status = response.get("statusCode") if isinstance(response, dict) else None
        tracing.set_attributes(
            span,
            http__response__status_code=status if isinstance(status, int) else None,
            funcmart__route_class=self._rate_policy(event)[0]
            if http_event_problem(event) is None
            else None,
        )
        if isinstance(status, int) and status >= 500:
            tracing.fail(span, f"answered {status}")

    def _checked(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        rejected = self._reject_early(event)
        if rejected is not None:
            return rejected
        correlate(_correlation_id(event))
        try:
            return contextvars.copy_context().run(self._limited, event, context)
        finally:
            self.deps.flush_metrics()

    def _limited(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        route_class, policy = self._rate_policy(event)
        decided = _decided.get()
        if decided is not None:  # counted by handler_async already
            decision = decided[0]
        else:
            decision = self._count_request(route_class, policy, event)
        if decision is not None and not decision.allowed and not self._replay(event):
            return self._too_many(route_class, policy, decision, event)
        response: dict[str, Any] = self.resolve(event, context)
        if decision is not None and policy is not None:
            response.setdefault("headers", {}).update(decision.headers(policy))
        return response

    # -- the event loop's path ----------------------------------------------------------
    async def handler_async(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """`handler` for a host on an event loop, with the same answers. A cached product's
        hit is one awaited Redis call (rate limit and cache read together) answered with the
        entry's own bytes; anything else runs `handler` on a worker thread, the request
        counted once."""
        if self._cached_answer is None:
            result: dict[str, Any] = await asyncio.to_thread(self.handler, event, context)
            return result
        if tracing.enabled():
            return await self._traced_async(event, context)
        answer = await self._cache_hit(event)
        if answer is not None:
            return answer
        result = await asyncio.to_thread(self.handler, event, context)
        return result

    async def _traced_async(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """`handler_async` with tracing on: the request's span opens here, so a hit answered
        on the loop is traced as the synchronous path traces a request (its Redis call a
        child), and a request the loop does not answer goes on to the worker thread within
        that same span."""
        with self._server_span(event, context) as span:
            answer = await self._cache_hit(event)
            if answer is None:
                token = _spanned.set(True)  # copied into the thread's context
                try:
                    answer = await asyncio.to_thread(self.handler, event, context)
                finally:
                    _spanned.reset(token)
            self._answered(span, event, answer)
            return answer

    async def _cache_hit(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to a cache hit, or None for the synchronous path (which then finds this
        request's decision and read-ahead in its context)."""
        answers, param = self._cached_answer, self._cached_product
        if answers is None or param is None:
            return None
        # Only the fields this path reads, read defensively: any event of another shape takes
        # the synchronous path, which checks every field (`http_event_problem`) and answers.
        try:
            if event.get("body") or event.get("version", "2.0") != "2.0":
                return None
            product_id = event["pathParameters"][param]
            route_class, policy = self._rate_policy(event)
            caller = _caller(event)
            principal = principal_from_claims(_claims(event))
        except (AttributeError, KeyError, TypeError):
            return None
        if not isinstance(product_id, str) or not product_id or policy is None:
            return None
        try:
            decision = await self.deps.async_rate_limiter.hit(
                f"{route_class}:{caller}", policy, (product_id,)
            )
        except errors.DependencyUnavailable as exc:
            self._fail_open(route_class, exc)
            _decided.set((None,))
            return None
        _decided.set((decision,))
        if not decision.allowed:
            return None  # 429, or a replay: the synchronous path decides
        from funcmart.adapters.redis_store import read_ahead

        text = read_ahead(product_id)
        if not answers(text, product_id, principal):
            return None
        self.deps.metrics.incr("CacheHits")
        headers = {"Content-Type": "application/json", "X-Cache": "HIT"}
        headers.update(decision.headers(policy))
        return {"statusCode": 200, "headers": headers, "body": text, "isBase64Encoded": False}

    # -- rate limiting ------------------------------------------------------------------
    def _rate_policy(self, event: dict[str, Any]) -> tuple[str, RatePolicy | None]:
        if len(self._rate_policies) == 1:
            return next(iter(self._rate_policies.items()))
        method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "GET")
        route_class = "reads" if str(method).upper() in ("GET", "HEAD") else "writes"
        return route_class, self._rate_policies[route_class]

    def _count_request(
        self, route_class: str, policy: RatePolicy | None, event: dict[str, Any]
    ) -> RateDecision | None:
        """This request counted against its caller; None when unlimited or Redis is out."""
        if policy is None:
            return None
        reads: tuple[str, ...] = ()
        if self._cached_product is not None:
            value = (event.get("pathParameters") or {}).get(self._cached_product)
            reads = (value,) if isinstance(value, str) and value else ()
        try:
            return self.deps.rate_limiter.hit(f"{route_class}:{_caller(event)}", policy, reads)
        except errors.DependencyUnavailable as exc:
            self._fail_open(route_class, exc)
            return None

    def _fail_open(self, route_class: str, exc: errors.DependencyUnavailable) -> None:
        self.deps.metrics.incr("RateLimiterFailOpen")
        logger.warning(
            "rate limiter unavailable, request let through (fail open)",
            extra={"detail": exc.detail, "routeClass": route_class},
        )

    def _replay(self, event: dict[str, Any]) -> bool:
        """Whether a refused request only replays a stored answer (it is let through).

        Asked only once the caller's limit is spent, so a request within the limit costs
        no lookup. A store that cannot answer means no: the limit holds."""
        if self._replays is None:
            return False
        authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
        claims = (authorizer.get("jwt") or {}).get("claims")
        principal = principal_from_claims(claims if isinstance(claims, dict) else None)
        key = _header(event, "idempotency-key")
        if principal is None or not key:
            return False
        try:
            replay = self._replays(principal, key)
        except errors.DomainError:
            return False
        if replay:
            self.deps.metrics.incr("RateLimitReplays")
        return replay

    def _too_many(
        self,
        route_class: str,
        policy: RatePolicy | None,
        decision: RateDecision,
        event: dict[str, Any],
    ) -> dict[str, Any]:
        assert policy is not None
        self.deps.metrics.incr("RateLimited")
        out = _raw_problem(
            429,
            "Too many requests",
            f"at most {policy.limit} {route_class} requests per {policy.period_seconds} s; "
            f"retry in {decision.retry_after_seconds} s",
            (event.get("requestContext") or {}).get("requestId"),
        )
        out["headers"].update(decision.headers(policy))
        return out

    @property
    def correlation_id(self) -> str:
        return _correlation_id(self.current_event.raw_event) or ""

    def _reject_early(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to an event this function cannot take, or to a body it must refuse
        before Powertools parses it; None when the route may run."""
        wrong = http_event_problem(event)
        if wrong is not None:
            title, detail = wrong
            rid = _request_id_of(event)
            logger.warning("event refused", extra={"reason": detail, "requestId": rid})
            return _raw_problem(400, title, detail, rid)
        rid = _request_id_of(event)
        body = event.get("body")
        if body is None:
            return None
        b64 = event.get("isBase64Encoded")
        size = len(body) * 3 // 4 if b64 else len(body.encode("utf-8", "surrogatepass"))
        if size > self.max_body_bytes:
            return _raw_problem(
                413,
                "Payload too large",
                f"the body is {size} bytes; the limit is {self.max_body_bytes}",
                rid,
            )
        if body:  # the media type first: a body in another charset is a 415, not a 400
            refused = json_body_problem(_header(event, "content-type"))
            if refused is not None:
                return _raw_problem(415, "Unsupported media type", refused, rid)
            _as_plain_json(event)
        text = _body_text(event)
        if text is None:
            return _raw_problem(400, "Malformed request", "the body is not UTF-8 text", rid)
        event["body"], event["isBase64Encoded"] = text, False
        if nests_deeper_than(event["body"], MAX_JSON_DEPTH):
            return _raw_problem(
                400,
                "Malformed request",
                f"the JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
                rid,
            )
        return None


# Deeper bodies are refused before parsing: Python's JSON parser and the validation recurse
# once per level, and no body this API takes nests beyond a few levels.
MAX_JSON_DEPTH = 64
_JSON_NESTING = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]')
_EXPECTED = "an API Gateway HTTP API event, payload format 2.0"
_REST_API = (
    f"this function takes {_EXPECTED}; this is a payload format 1.0 event (a REST API, or "
    "an HTTP API integration set to 1.0). Route it through an HTTP API with payload format "
    "2.0 (docs/deploy.md, Wiring another API in front)"
)
_MAPS = ("headers", "queryStringParameters", "pathParameters", "stageVariables")


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether the JSON `text` opens more than `limit` arrays and objects at once (brackets
    inside strings do not count). Linear in the text, and no parse."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for token in _JSON_NESTING.finditer(text):
        first = token.group()[0]
        if first in "[{":
            depth += 1
            if depth > limit:
                return True
        elif first in "]}":
            depth = max(0, depth - 1)
    return False


def http_event_problem(event: Any) -> tuple[str, str] | None:
    """(title, detail) saying why `event` is not an HTTP API payload 2.0 event this module
    can serve; None when it is one. Checks every field a route or Powertools reads."""
    if not isinstance(event, dict):
        return "Malformed event", f"expected {_EXPECTED}, got a JSON {_json_kind(event)}"
    if "httpMethod" in event or event.get("version") == "1.0":
        return "Unsupported event", _REST_API
    wrong = _event_field_problem(event)
    return None if wrong is None else ("Malformed event", f"expected {_EXPECTED}: {wrong}")


def _event_field_problem(event: dict[str, Any]) -> str | None:
    if event.get("version", "2.0") != "2.0":
        return "version is not 2.0"
    ctx = event.get("requestContext")
    http = ctx.get("http") if isinstance(ctx, dict) else None
    if not isinstance(ctx, dict) or not isinstance(http, dict):
        return "requestContext.http is missing"
    if not isinstance(http.get("method"), str) or not http["method"]:
        return "requestContext.http.method is missing"
    if not isinstance(ctx.get("stage"), str) or not isinstance(event.get("rawPath"), str):
        return "requestContext.stage or rawPath is missing"
    if not isinstance(ctx.get("requestId", ""), str):
        return "requestContext.requestId is not a string"
    return _content_problem(event) or _authorizer_problem(ctx.get("authorizer"))


def _content_problem(event: dict[str, Any]) -> str | None:
    for name in ("rawQueryString", "body"):
        if event.get(name) is not None and not isinstance(event[name], str):
            return f"{name} is not a string"
    if not isinstance(event.get("isBase64Encoded", False), bool | None):
        return "isBase64Encoded is not a boolean"
    for name in _MAPS:
        if not _is_str_map(event.get(name)):
            return f"{name} is not an object of strings"
    cookies = event.get("cookies")
    if cookies is not None and not (
        isinstance(cookies, list) and all(isinstance(c, str) for c in cookies)
    ):
        return "cookies is not a list of strings"
    return None


def _authorizer_problem(authorizer: Any) -> str | None:
    if authorizer is None:
        return None
    jwt = authorizer.get("jwt") if isinstance(authorizer, dict) else None
    claims = jwt.get("claims") if isinstance(jwt, dict) else None
    if not isinstance(authorizer, dict) or not isinstance(jwt, dict | None):
        return "requestContext.authorizer is not an object"
    if not isinstance(claims, dict | None):
        return "requestContext.authorizer.jwt.claims is not an object"
    return None


def _is_str_map(value: Any) -> bool:
    return value is None or (
        isinstance(value, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _request_id_of(event: Any) -> str | None:
    """The request id of an event of any shape, when it carries a usable one."""
    ctx = event.get("requestContext") if isinstance(event, dict) else None
    rid = ctx.get("requestId") if isinstance(ctx, dict) else None
    return rid if isinstance(rid, str) and rid else None


def _rate_policies(route_class: str | None, spec: str | None) -> dict[str, RatePolicy | None]:
    """The policy of the function's route class, or (no class configured) of reads and
    writes, chosen per request by its method. RATE_LIMIT overrides the class default.
    (Settings has checked both at cold start.)"""
    classes = [route_class] if route_class else ["reads", "writes"]
    try:
        return {c: parse_policy(spec if spec is not None else DEFAULT_LIMITS[c]) for c in classes}
    except ValueError as exc:
        raise SettingsError(f"RATE_LIMIT: {exc}") from exc


def _claims(event: dict[str, Any]) -> dict[str, Any] | None:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims")
    return claims if isinstance(claims, dict) else None


def _caller(event: dict[str, Any]) -> str:
    """Who a request counts against: the verified subject, else the client's address."""
    ctx = event.get("requestContext") or {}
    claims = ((ctx.get("authorizer") or {}).get("jwt") or {}).get("claims") or {}
    if isinstance(claims, dict) and claims.get("sub"):
        return f"sub:{claims['sub']}"
    return f"ip:{(ctx.get('http') or {}).get('sourceIp') or 'unknown'}"


def _span_of(event: Any) -> tuple[str, dict[str, Any]]:
    """The request span's name (the route, as API Gateway names it: `POST /orders`) and
    attributes (OpenTelemetry's HTTP names, and who is calling: anonymous, customer or
    admin), read defensively: the event is not checked yet."""
    if not isinstance(event, dict):
        return "HTTP", {}
    ctx = _object(event.get("requestContext"))
    method = str(_object(ctx.get("http")).get("method") or "HTTP")[:16]
    route = event.get("routeKey") or ctx.get("routeKey")
    route = route if isinstance(route, str) and route != "$default" else None
    claims = _object(_object(_object(ctx.get("authorizer")).get("jwt")).get("claims"))
    who = principal_from_claims(claims)
    caller = "anonymous" if who is None else "admin" if who.is_admin else "customer"
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": str(event.get("rawPath") or "")[:1000],
        "funcmart.caller": caller,
    }
    if route:
        attributes["http.route"] = route.split(" ", 1)[-1]
    rid = _request_id_of(event)
    if rid:
        attributes["funcmart.request_id"] = rid
    return (route or method), attributes


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _header(event: dict[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    return next((str(v) for k, v in headers.items() if k.lower() == name), None)


def _correlation_id(event: dict[str, Any]) -> str | None:
    supplied = _header(event, "x-correlation-id")
    if supplied and len(supplied) <= 128 and supplied.isprintable():
        return supplied
    rid = (event.get("requestContext") or {}).get("requestId")
    return str(rid) if rid else None


def _body_text(event: dict[str, Any]) -> str | None:
    """The body as the text that was sent: base64 decoded, which must be UTF-8; None when
    it is not UTF-8 text (invalid bytes, or lone surrogates a host let through)."""
    body: str = event["body"]
    try:
        if event.get("isBase64Encoded"):
            return base64.b64decode(body, validate=True).decode("utf-8")
        body.encode("utf-8")
    except (ValueError, UnicodeError):
        return None
    return body


def _as_plain_json(event: dict[str, Any]) -> None:
    """Name an accepted JSON media type (any case, +json, parameters) as application/json,
    the one Powertools parses: it was checked against the policy already."""
    headers = event.get("headers")
    if not headers:
        return
    for name in [k for k in headers if k.lower() == "content-type"]:
        del headers[name]
    headers["content-type"] = "application/json"


def _is_store_fault(exc: Exception) -> bool:
    """Whether a failure is the store's (unreachable, throttled, an internal error), which
    only a botocore or pynamodb error can be: their modules are loaded only then, so a
    function that never calls AWS does not load the SDK here."""
    if type(exc).__module__.split(".", 1)[0] not in ("botocore", "pynamodb"):
        return False
    from funcmart.adapters.dynamodb.errors import is_store_fault

    return is_store_fault(exc)


def _raw_problem(status: int, title: str, detail: str, request_id: str | None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": problem_body(status, title, detail, request_id),
        "isBase64Encoded": False,
    }


def json_response(
    body: Any, status: int = HTTPStatus.OK, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=int(status),
        content_type="application/json",
        body=body,
        headers=headers or {},
    )
