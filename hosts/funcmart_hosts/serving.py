"""The one HTTP stack every host serves through: uvicorn (httptools' llhttp parser on uvloop)
in front of a bare ASGI app. No WSGI server, no framework: the app is `Edge` and the function.

What is ours here is only what the library leaves to its user:

- `ProblemProtocol`: uvicorn's httptools protocol, whose own answers (a request llhttp refuses:
  bad framing, a bare CR, Content-Length beside Transfer-Encoding, an HTTP/0.9 line; headers
  over the limit) are problem+json like every other answer, with `Connection: close`.
- `read_body`: the request body within a limit (413 before a byte is read when Content-Length
  says so, else as soon as the chunks pass it).
- `send_response`: an `HttpResponse` written as ASGI messages.
- `server`: a uvicorn `Server` configured the same way for every host: no proxy-header
  rewriting (the hosts decide whom to trust), no access log of uvicorn's own (each host writes
  one structured line), no `Server` header, graceful shutdown bounded, and a host's own last
  step after it (`after_shutdown`): uvicorn ends a process stopped by a signal by raising that
  signal again once it has shut down, so the interpreter's exit handlers never run.

Import-free of both hosts, so the Knative host and the local platform share it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from funcmart.problems import PROBLEM_JSON, problem_body
from funcmart_hosts.gateway.events import request_id
from funcmart_hosts.gateway.responses import HttpResponse, safe_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("funcmart.serving")
# Request line and headers together: more is answered 431 and the connection closed.
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100


class ProblemProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering what it refuses as problem+json, writing each
    response in one send."""

    _header_bytes = 0
    _header_count = 0
    _too_large = False
    _peer_done = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.one_send = OneSend(transport, self.loop)
        super().connection_made(self.one_send)  # type: ignore[arg-type]

    def eof_received(self) -> bool | None:  # type: ignore[override]
        """A client may send its request and close its side (a half-close): its answer is
        still written, then the connection closed. With nothing in flight, close now."""
        self._peer_done = True
        self.one_send.flush()  # with nothing in flight, the transport closes itself
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            # The body can never end now: answered here, the app's receive() told it is gone
            # (its answer, if it still sends one, goes nowhere).
            detail = "the client closed its side of the connection before the request body ended"
            self.transport.write(raw_problem(400, "Malformed request", detail))
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.close()
            return None
        busy = cycle is not None and not cycle.response_complete
        return True if busy or self.pipeline else None

    def on_response_complete(self) -> None:
        self.one_send.flush()  # the whole response: out now
        super().on_response_complete()
        if self._peer_done and not self.pipeline and not self.transport.is_closing():
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES or self._header_count > MAX_HEADERS:
            self._too_large = True
            raise ValueError("request head over the limit")  # llhttp stops: send_400_response

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no WebSockets here: the request is served as a plain one
        except httptools.HttpParserError as exc:
            # llhttp's own reason ("Invalid character in chunk size"): fixed text, never an
            # echo of the request.
            reason = str(exc)[:100]
            self.send_400_response(reason if reason.isprintable() else "")

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            status, title = 431, "Request header fields too large"
            detail = f"the request line and headers are over {MAX_HEADER_BYTES} bytes or "
            detail += f"{MAX_HEADERS} fields"
        else:
            status, title = 400, "Malformed request"
            detail = "the request is not valid HTTP/1.1" + (f": {msg}" if msg else "")
        self.transport.write(raw_problem(status, title, detail))
        self.transport.close()


class OneSend:
    """A connection's transport as the protocol writes to it: a write is held until the next
    one joins it or the loop's next turn, whichever comes first, so a response's head and body
    (two ASGI messages, two writes in uvicorn) leave in one system call and one packet instead
    of two. Closing sends what is held first; everything else is the transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._held = None
            self._transport.writelines((held, data))

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def raw_problem(status: int, title: str, detail: str) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection, as bytes."""
    body = problem_body(status, title, detail, request_id()).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class BodyTooLarge(Exception):
    """The request body is over the host's limit."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, or BodyTooLarge as soon as it is known to pass `limit`."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_response(
    send: Send, response: HttpResponse, extra: list[tuple[str, str]] | None = None
) -> None:
    """`response` as ASGI messages; Content-Length from the body, framing headers ours."""
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in (
            response.headers if response.checked else safe_headers(response.headers)
        )
        if name.lower() not in ("content-length", "transfer-encoding")
    ]
    for name, value in extra or ():
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def header(scope: Scope, name: bytes) -> str | None:
    """All values of one header (its name in lower case), comma-joined, or None."""
    values = [v.decode("latin-1") for n, v in scope["headers"] if n == name]
    return ",".join(values) if values else None


def target_of(scope: Scope) -> str:
    """The request target as sent: raw path and raw query string."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    return (path + (b"?" + query if query else b"")).decode("latin-1")


def server(
    app: Callable[..., Awaitable[None]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    graceful_seconds: float = 10,
    keep_alive_seconds: int = 75,
    after_shutdown: Callable[[], None] | None = None,
) -> uvicorn.Server:
    """A uvicorn server for `app`, configured alike for every host. `server.run()` serves in
    the calling thread; `serve_socket` serves on a socket a caller already bound.
    `after_shutdown` runs once the last request has been answered (or the graceful period
    is over), before the process ends."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=ProblemProtocol,
        loop="uvloop",
        lifespan="off",
        interface="asgi3",
        ws="none",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=True,
        log_config=None,
        # Longer than the proxies' idle timeouts in front (Knative's queue-proxy, Envoy), so
        # a kept-alive connection is never closed under a request they send on it.
        timeout_keep_alive=keep_alive_seconds,
        timeout_graceful_shutdown=int(graceful_seconds) or None,
    )
    return _Server(config, after_shutdown)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, after_shutdown: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._after_shutdown = after_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        if self._after_shutdown is not None:
            self._after_shutdown()  # nothing else runs on the loop any more


def serve_socket(server_: uvicorn.Server, sock: socket.socket) -> None:
    """Serve on `sock` (bound and listening) until `server_.should_exit`; this thread's loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(server_.serve(sockets=[sock]))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop (asyncio's where uvloop is missing)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the hosts' dependencies
        return asyncio.new_event_loop
    return uvloop.new_event_loop
