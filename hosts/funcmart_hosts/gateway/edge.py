"""The edge: route, authorize, build the event, invoke, map the result; one request, no
sockets. The local gateway and the Knative host put it in front of their functions."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funcmart.adapters.metrics import InProcessMetrics
from funcmart_hosts.gateway.auth import AuthError, JwtConfig, TokenVerifier, Verified, token_from
from funcmart_hosts.gateway.events import ApiContext, HttpRequest, http_event, request_id
from funcmart_hosts.gateway.responses import (
    HttpResponse,
    MalformedResponse,
    http_response,
    problem_response,
)
from funcmart_hosts.gateway.routes import Route, RouteTable

log = logging.getLogger("funcmart.edge")
# API Gateway HTTP APIs reject request payloads over 10 MB.
API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024


@dataclass
class Outcome:
    response: HttpResponse
    request_id: str
    function: str | None = None
    route_key: str | None = None


@dataclass
class Call:
    """A routed, authorized request: the function's route and the event it gets."""

    route: Route
    event: dict[str, Any]
    request_id: str


# invoke(route, event, request id) -> the function's result
Invoke = Callable[["Route", dict[str, Any], str], Any]
AsyncInvoke = Callable[["Route", dict[str, Any], str], Awaitable[Any]]


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
        self._keys: dict[tuple[str | None, int], tuple[Any, Any]] = {}

    def handle(
        self, request: HttpRequest, invoke: Invoke, *, claims: Mapping[str, Any] | None = None
    ) -> Outcome:
        """Answer one request. `claims` skips token verification (in-process callers that
        act as a known principal, e.g. seeding demo data)."""
        started = time.perf_counter()
        call = self.prepare(request, claims)
        if isinstance(call, Outcome):
            return self._count(call, started)
        try:
            result = invoke(call.route, call.event, call.request_id)
        except Exception:
            return self._count(self.failed(call), started)
        return self._count(self.finish(call, result), started)

    async def handle_async(self, request: HttpRequest, invoke: AsyncInvoke) -> Outcome:
        """`handle` for an event loop: the same steps, the function awaited."""
        started = time.perf_counter()
        call = self.prepare(request, None)
        if isinstance(call, Outcome):
            return self._count(call, started)
        try:
            result = await invoke(call.route, call.event, call.request_id)
        except Exception:
            return self._count(self.failed(call), started)
        return self._count(self.finish(call, result), started)

    def _count(self, outcome: Outcome, started: float) -> Outcome:
        metrics = self.metrics
        if metrics is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            keys = self._keys.get((outcome.route_key, outcome.response.status))
            if keys is None:  # once per route and status: the series' keys, pre-bound
                route = outcome.route_key or "unmatched"
                code = str(outcome.response.status)
                keys = (
                    metrics.label_key({"route": route, "code": code}),
                    metrics.label_key({"route": route}),
                )
                self._keys[(outcome.route_key, outcome.response.status)] = keys
            metrics.incr_key("HttpRequests", keys[0])
            metrics.observe_key("HttpLatency", elapsed_ms, keys[1])
        return outcome

    def prepare(self, request: HttpRequest, claims: Mapping[str, Any] | None) -> Call | Outcome:
        """Route and authorize `request` and build its event: the call to make, or the
        answer the edge gives by itself (404, 405, 401, 403)."""
        rid = request_id()
        found = self.routes.match(request.method, request.raw_path)
        if found is None:
            return Outcome(self._no_route(request, rid), rid)
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
        return Call(route, event, rid)

    @staticmethod
    def failed(call: Call) -> Outcome:
        """The answer when the function raised: 500, the traceback logged."""
        route, rid = call.route, call.request_id
        log.exception("%s raised on %s (request %s)", route.function, route.route_key, rid)
        response = problem_response(
            500, "Internal error", f"the function {route.function} failed; see its log", rid
        )
        return Outcome(response, rid, route.function, route.route_key)

    @staticmethod
    def finish(call: Call, result: Any) -> Outcome:
        """The function's result as the HTTP response (502 when it is not a valid one)."""
        route, rid = call.route, call.request_id
        try:
            response = http_response(result)
        except MalformedResponse as exc:
            log.error("%s returned a malformed response (request %s): %s", route.function, rid, exc)
            response = problem_response(
                502,
                "Bad gateway",
                f"the function {route.function} returned a malformed response",
                rid,
            )
        return Outcome(response, rid, route.function, route.route_key)

    def _no_route(self, request: HttpRequest, rid: str) -> HttpResponse:
        """404 when no route has the path; 405 with Allow when routes have it, not for this
        method."""
        allowed = self.routes.methods_at(request.raw_path)
        if not allowed:
            detail = f"no route for {request.method[:20]} {request.raw_path[:200]}"
            return problem_response(404, "Not found", detail, rid)
        detail = f"{request.raw_path[:200]} takes {', '.join(allowed)}"
        headers = [("Allow", ", ".join(allowed))]
        return problem_response(405, "Method not allowed", detail, rid, headers)

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
