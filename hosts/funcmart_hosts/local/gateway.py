"""A local API Gateway HTTP API: the template's routes on 127.0.0.1, payload 2.0 events.

`Gateway.handle` is the gateway without sockets (route, authorize, build the event, invoke,
map the result); `Gateway.start` serves it over HTTP/1.1 with keep-alive through the HTTP
stack every host shares (`funcmart_hosts.serving`: uvicorn with httptools' parser), each
request's function on a thread of the gateway's pool. See `runtime` for how concurrent
requests reach the handlers.

What a client sees when something goes wrong, all as application/problem+json, whatever
the method, headers or framing: 404 no route; 405 with Allow when routes have the path but
not the method; 400 for a request line, header or body framing HTTP/1.1 does not allow (a
chunk size that is not hex, Content-Length headers that disagree or beside
Transfer-Encoding, a transfer coding other than chunked, a bare CR, HTTP/0.9), 431 for
headers over the limits; 401 with WWW-Authenticate: Bearer for
a missing or bad token; 403 for a missing scope; 413 over 10 MB; 500 when the function
raised (the traceback is logged, as Lambda logs it); 502 when the function's result is not a
valid response. No header value the gateway writes carries a control character.

With the template's CorsConfiguration the gateway answers preflights and adds the
Access-Control-* headers as API Gateway does (see `cors`); with `docs` it also serves
/openapi.json and a Swagger UI at /docs, with `console` the operator console at /console
(see `console`), and with `traces` the recent traces at /traces (see `traces`); no function
route can shadow them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn

from funcmart.adapters.metrics import PROMETHEUS_CONTENT_TYPE, REGISTRY
from funcmart_hosts.gateway.auth import JwtConfig, TokenVerifier
from funcmart_hosts.gateway.edge import Edge, Outcome
from funcmart_hosts.gateway.events import ApiContext, HttpRequest, request_id
from funcmart_hosts.gateway.responses import HttpResponse, problem_response
from funcmart_hosts.gateway.routes import Route, RouteTable
from funcmart_hosts.local.apidocs import ApiDocs
from funcmart_hosts.local.console import Console
from funcmart_hosts.local.cors import CorsConfig
from funcmart_hosts.local.hostnames import HostNames
from funcmart_hosts.local.runtime import Invoker
from funcmart_hosts.local.traces import TracePages
from funcmart_hosts.serving import (
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    read_body,
    send_response,
    serve_socket,
    server,
    target_of,
)

log = logging.getLogger("local-platform")
access_log = logging.getLogger("local-platform.access")


class Gateway:
    def __init__(
        self,
        routes: RouteTable,
        invoker: Invoker,
        verifier: TokenVerifier,
        authorizers: Mapping[str, JwtConfig],
        *,
        api: ApiContext | None = None,
        max_body_bytes: int = 10 * 1024 * 1024,
        cors: CorsConfig | None = None,
        docs: ApiDocs | None = None,
        console: Console | None = None,
        hosts: HostNames | None = None,
        traces: TracePages | None = None,
    ) -> None:
        self.invoker = invoker
        self.hosts = hosts or HostNames()
        self.cors = cors
        self.docs = docs
        self.console = console
        self.traces = traces
        self.edge = Edge(routes, verifier, authorizers, api=api, metrics=REGISTRY)
        self.max_body_bytes = max_body_bytes
        self._server: uvicorn.Server | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        # Functions block (botocore, redis-py): each request runs on one of these threads.
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="gateway")

    @property
    def routes(self) -> RouteTable:
        return self.edge.routes

    @property
    def api(self) -> ApiContext:
        return self.edge.api

    # -- the gateway without sockets ---------------------------------------------------
    def handle(self, request: HttpRequest, *, claims: Mapping[str, Any] | None = None) -> Outcome:
        """Answer one request (the gateway's `Edge` routes, authorizes and maps it). GET /metrics
        is the process's metrics in the Prometheus text format, as on Knative. CORS wraps
        every answer, as API Gateway's does. A Host name the gateway does not serve is
        answered 421 before anything else (see `hostnames`)."""
        refused = self.hosts.refusal(request)
        if refused is not None:
            return Outcome(refused, request_id())
        if self.cors is not None and self.cors.is_preflight(request):
            return Outcome(self.cors.preflight(request), request_id())
        outcome = self._answer(request, claims)
        if self.cors is not None:
            self.cors.decorate(request, outcome.response)
        return outcome

    def _answer(self, request: HttpRequest, claims: Mapping[str, Any] | None) -> Outcome:
        if request.method == "GET" and request.raw_path == "/metrics":
            return metrics_outcome()
        page = self.docs.serve(request) if self.docs is not None else None
        if page is None and self.console is not None:
            page = self.console.serve(request)
        if page is None and self.traces is not None:
            page = self.traces.serve(request)
        if page is not None:
            return Outcome(page, request_id())
        return self.edge.handle(request, self._call, claims=claims)

    def _call(self, route: Route, event: dict[str, Any], rid: str) -> Any:
        return self.invoker.invoke(route.function, event, request_id=rid)

    # -- serving -----------------------------------------------------------------------
    def start(
        self, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        """Serve on host:port, or on `sock`: a socket already bound and listening (the
        reloading `dev` keeps one open across restarts of the functions; the server gets a
        duplicate of it, so stopping the server leaves it open)."""
        if sock is None:
            sock = socket.create_server((host, port), backlog=128)
            listening = sock
        else:
            listening = sock.dup()
        bound = listening.getsockname()[1]
        api = self.edge.api
        self.edge.api = ApiContext(api.account_id, api.api_id, api.stage, bound)
        self._server = server(LocalApp(self), host=host, port=bound, graceful_seconds=5)
        self._port = int(bound)
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="gateway")
        srv = self._server
        self._thread = threading.Thread(
            target=serve_socket, args=(srv, listening), name="gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not srv.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the local gateway did not start")
            time.sleep(0.005)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (within `grace`), close idle
        keep-alive connections."""
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.should_exit = True
        if self._thread is not None:
            self._thread.join(grace + 1)
            if self._thread.is_alive():
                srv.force_exit = True
                self._thread.join(2)
        self.pool.shutdown(wait=False, cancel_futures=True)


class LocalApp:
    """The gateway as an ASGI app on the shared HTTP stack (`funcmart_hosts.serving`): the
    body read within the limit, the socket-free `Gateway.handle` run on a thread (functions
    block), one access line per request."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.monotonic()
        rid = request_id()
        gateway = self.gateway
        if scope.get("http_version") not in ("1.0", "1.1"):
            detail = "the request is not HTTP/1.0 or HTTP/1.1"
            outcome = Outcome(problem_response(400, "Malformed request", detail, rid, CLOSE), rid)
        else:
            try:
                body = await read_body(scope, receive, gateway.max_body_bytes)
            except BodyTooLarge:
                limit = gateway.max_body_bytes
                detail = f"the request body is over API Gateway's limit of {limit} bytes"
                response = problem_response(413, "Payload too large", detail, rid, CLOSE)
                outcome = Outcome(response, rid)
            else:
                outcome = await self._handle(scope, body, rid)
        await send_response(send, outcome.response, [("Apigw-Requestid", outcome.request_id)])
        client = scope.get("client")
        access_log.info(
            '%s "%s %s HTTP/%s" %d %dB %.1fms %s %s',
            client[0] if client else "-",
            scope["method"],
            target_of(scope)[:300],
            scope.get("http_version", "1.1"),
            outcome.response.status,
            len(outcome.response.body),
            (time.monotonic() - started) * 1000,
            outcome.function or "-",
            outcome.request_id,
        )

    async def _handle(self, scope: Scope, body: bytes, rid: str) -> Outcome:
        client = scope.get("client")
        request = HttpRequest(
            method=scope["method"],
            target=target_of(scope),
            headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]],
            body=body,
            source_ip=client[0] if client else "127.0.0.1",
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.gateway.pool, self.gateway.handle, request)
        except Exception:  # a gateway fault: answered and logged, never a dropped socket
            log.exception(
                "the gateway failed on %s %s (request %s)", request.method, request.target, rid
            )
            detail = "the local gateway failed; see its log"
            return Outcome(problem_response(500, "Internal error", detail, rid), rid)


CLOSE = [("Connection", "close")]


def metrics_outcome() -> Outcome:
    body = REGISTRY.prometheus_text().encode()
    return Outcome(
        HttpResponse(200, [("Content-Type", PROMETHEUS_CONTENT_TYPE)], body), request_id()
    )
