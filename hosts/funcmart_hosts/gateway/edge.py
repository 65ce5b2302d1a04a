"""The edge: route, authorize, build the event, invoke, map the result; one request, no
sockets. The local gateway and the Knative host put it in front of their functions."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
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
