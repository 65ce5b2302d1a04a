"""A local API Gateway HTTP API: the template's routes on 127.0.0.1, payload 2.0 events.

`Gateway.handle` is the gateway without sockets (route, authorize, build the event, invoke,
map the result); `Gateway.start` serves it over HTTP/1.1 with keep-alive on a threading
server. See `runtime` for how concurrent requests reach the handlers.

What a client sees when something goes wrong, all as application/problem+json, whatever
the method, headers or framing: 404 no route; 405 with Allow when routes have the path but
not the method; 400 for a request line, header or body framing HTTP/1.1 does not allow (a
chunk size that is not hex, Content-Length headers that disagree), 501 for a transfer coding
other than chunked, 431 for headers over the limits; 401 with WWW-Authenticate: Bearer for
a missing or bad token; 403 for a missing scope; 413 over 10 MB; 500 when the function
raised (the traceback is logged, as Lambda logs it); 502 when the function's result is not a
valid response. No header value the gateway writes carries a control character.

With the template's CorsConfiguration the gateway answers preflights and adds the
Access-Control-* headers as API Gateway does (see `cors`); with `docs` it also serves
/openapi.json and a Swagger UI at /docs, which no function route can shadow (see `apidocs`),
and with `traces` the recent traces at /traces (see `traces`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from funcmart.adapters.metrics import PROMETHEUS_CONTENT_TYPE, REGISTRY
from funcmart_hosts.gateway.auth import JwtConfig, TokenVerifier
from funcmart_hosts.gateway.edge import Edge, Outcome
from funcmart_hosts.gateway.events import ApiContext, HttpRequest, request_id
from funcmart_hosts.gateway.responses import HttpResponse, problem_response, safe_headers
from funcmart_hosts.gateway.routes import Route, RouteTable
from funcmart_hosts.local.apidocs import ApiDocs
from funcmart_hosts.local.cors import CorsConfig
from funcmart_hosts.local.runtime import Invoker
from funcmart_hosts.local.traces import TracePages

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
        traces: TracePages | None = None,
    ) -> None:
        self.invoker = invoker
        self.cors = cors
        self.docs = docs
        self.traces = traces
        self.edge = Edge(routes, verifier, authorizers, api=api, metrics=REGISTRY)
        self.max_body_bytes = max_body_bytes
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

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
        every answer, as API Gateway's does."""
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
        reloading `dev` keeps one open across restarts of the functions)."""
        self._server = _Server((host, port), self, sock)
        api = self.edge.api
        self.edge.api = ApiContext(
            api.account_id, api.api_id, api.stage, self._server.server_address[1]
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="gateway",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish, close idle keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections(grace)
        server.server_close()
        if self._thread is not None:
            self._thread.join(grace)


def metrics_outcome() -> Outcome:
    body = REGISTRY.prometheus_text().encode()
    return Outcome(
        HttpResponse(200, [("Content-Type", PROMETHEUS_CONTENT_TYPE)], body), request_id()
    )


class _BodyTooLarge(Exception):
    pass


class _Unsupported(Exception):
    """A transfer coding other than chunked."""


MAX_LINE = 65536  # bytes in a request line or a chunk-size line, as http.server reads them
MAX_TRAILERS = 100
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,19}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # close_connections() joins with a deadline instead
    request_queue_size = 64

    def __init__(
        self, address: tuple[str, int], gateway: Gateway, sock: socket.socket | None = None
    ) -> None:
        self.gateway = gateway
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, tuple[threading.Thread, list[bool]]] = {}
        super().__init__(address, _Handler, bind_and_activate=sock is None)
        if sock is not None:
            self.socket.close()
            self.socket = sock
            self.server_address = sock.getsockname()[:2]
            self.server_name, self.server_port = str(address[0]), int(self.server_address[1])

    def track(self, conn: socket.socket, busy: list[bool]) -> None:
        with self._lock:
            self._conns[conn] = (threading.current_thread(), busy)

    def untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.pop(conn, None)

    def close_connections(self, grace: float) -> None:
        self.closing.set()
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                conns = list(self._conns.items())
            if not conns:
                return
            for conn, (_thread, busy) in conns:
                if not busy[0]:  # idle keep-alive: wake its reader, which then closes
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
            for _conn, (thread, _busy) in conns:
                thread.join(max(0.0, min(0.2, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                log.warning("%d connections still busy at shutdown", len(conns))
                return


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "funcmart-local"
    timeout = 60  # seconds a connection may sit idle between requests
    # Headers and body are two writes: with Nagle's algorithm the body waits for the ACK of
    # the headers, which a client delays by up to 40 ms (delayed ACK) on every keep-alive
    # request.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self._busy = [False]
        self.server.track(self.connection, self._busy)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def handle_one_request(self) -> None:
        """BaseHTTPRequestHandler's, with every method served by `_serve` (the edge answers
        405 for a method no route takes) instead of an HTML 501 page."""
        if self.server.closing.is_set():
            self.close_connection = True
            return
        self.command = ""  # until the request line is parsed (send_error reads it)
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if len(self.raw_requestline) > MAX_LINE:
                self.requestline = self.request_version = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():  # it has answered (send_error)
                return
            self._serve()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's error answers (malformed request line, headers over the limits) as
        problem+json, never its HTML page."""
        status = HTTPStatus(code)
        rid = request_id()
        detail = f"{message or status.phrase}" + (f": {explain}" if explain else "")
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsed: answer with a status line anyway
            self.request_version = "HTTP/1.1"
        self._write(problem_response(code, status.phrase, detail[:300], rid), rid)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def _serve(self) -> None:
        self._busy[0] = True
        started = time.monotonic()
        try:
            self._serve_one(started)
        finally:
            self._busy[0] = False
            if self.server.closing.is_set():
                self.close_connection = True

    def _serve_one(self, started: float) -> None:
        gateway = self.server.gateway
        rid = request_id()
        try:
            body = self._read_body(gateway.max_body_bytes)
        except _BodyTooLarge:
            self.close_connection = True  # the rest of the body is never read
            limit = gateway.max_body_bytes
            detail = f"the request body is over API Gateway's limit of {limit} bytes"
            outcome = Outcome(problem_response(413, "Payload too large", detail, rid), rid)
        except _Unsupported as exc:
            self.close_connection = True
            detail = f"{exc} is not supported; send the body with Content-Length or chunked"
            outcome = Outcome(problem_response(501, "Not implemented", detail, rid), rid)
        except ValueError as exc:
            self.close_connection = True
            outcome = Outcome(problem_response(400, "Malformed request", str(exc), rid), rid)
        else:
            request = HttpRequest(
                method=self.command,
                target=self.path,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                protocol=self.request_version,
            )
            try:
                outcome = gateway.handle(request)
            except Exception:  # a gateway fault: answered and logged, never a dropped socket
                log.exception(
                    "the gateway failed on %s %s (request %s)", self.command, self.path, rid
                )
                detail = "the local gateway failed; see its log"
                outcome = Outcome(problem_response(500, "Internal error", detail, rid), rid)
        self._write(outcome.response, outcome.request_id)
        access_log.info(
            '%s "%s %s %s" %d %dB %.1fms %s %s',
            self.client_address[0],
            self.command,
            self.path,
            self.request_version,
            outcome.response.status,
            len(outcome.response.body),
            (time.monotonic() - started) * 1000,
            outcome.function or "-",
            outcome.request_id,
        )

    def _read_body(self, limit: int) -> bytes:
        """The body, read within `limit` bytes; ValueError for framing HTTP/1.1 forbids."""
        coding = self.headers.get_all("Transfer-Encoding") or []
        if coding:
            if ",".join(coding).strip().lower() != "chunked":
                raise _Unsupported(f"transfer coding {','.join(coding)[:60]!r}")
            return self._read_chunked(limit)
        lengths = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise ValueError("Content-Length headers disagree")
        (raw,) = lengths
        if not _DIGITS.fullmatch(raw):
            raise ValueError("Content-Length is not a number")
        length = int(raw)
        if length > limit:
            raise _BodyTooLarge
        return self.rfile.read(length)

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = self._chunk_size(self.rfile.readline(MAX_LINE + 1))
            if size == 0:
                break
            total += size
            if total > limit:
                raise _BodyTooLarge
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise ValueError("malformed chunked body: a chunk is cut short")
            chunks.append(chunk)
        for _ in range(MAX_TRAILERS + 1):  # trailers, then the empty line
            if self.rfile.readline(MAX_LINE + 1) in (b"\r\n", b"\n", b""):
                return b"".join(chunks)
        raise ValueError("malformed chunked body: too many trailer lines")

    @staticmethod
    def _chunk_size(line: bytes) -> int:
        """A chunk-size line's size: hex digits only (no sign, no space inside), within
        the line limit."""
        size = line.split(b";", 1)[0].strip()
        if len(line) > MAX_LINE or not _HEX.fullmatch(size):
            raise ValueError("malformed chunked body: a chunk size is not hex")
        return int(size, 16)

    def _write(self, response: HttpResponse, rid: str) -> None:
        self.send_response(response.status)
        for name, value in safe_headers(response.headers):
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        self.send_header("Apigw-Requestid", rid)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
