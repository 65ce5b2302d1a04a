"""Redis from an event loop for the one call a cache hit makes: a Lua script by its SHA1.

The Knative host answers a GetProduct cache hit on its event loop with one Redis call (the
rate-limit script, which also reads the product's cache entry). A profile of the host under
load put half of its CPU per hit in redis.asyncio around that call: asyncio streams, a timer
per read, a retry wrapper, the pure-Python RESP parser. This client keeps what the call needs:
one `asyncio.Protocol` per connection, replies parsed by hiredis (Redis's own C parser), the
connections pooled, one deadline per call. Everything else on Redis stays on redis-py.

- A connection runs one command at a time, and goes back to the pool only after its reply
  has been read whole; the pool belongs to the running loop (used from another, it starts
  anew); a call that fails, times out or is cancelled closes its connection.
- A pooled connection Redis closed while it was idle fails before any reply: the call goes
  again at once, once, on a new connection. Any other failure is raised: ConnectionError or
  TimeoutError (both OSError), or ScriptError (a redis-py ResponseError) for an error
  reply.
- NOSCRIPT (Redis restarted, or SCRIPT FLUSH) sends the script's text once (EVAL), which
  caches it again.
- REDIS_URL as redis-py reads it: redis:// or rediss:// (TLS, the certificate verified),
  user and password, database from the path or `?db=`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import urllib.parse
from typing import Any

import hiredis
from redis.exceptions import ResponseError


class ScriptError(ResponseError):
    """Redis answered the call with an error (the message is Redis's)."""


class _Connection(asyncio.Protocol):
    """One connection: commands go out whole, the reply comes back through hiredis."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._transport: asyncio.Transport | None = None
        self._waiting: asyncio.Future[Any] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while self._waiting is not None:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:  # not Redis speaking: this connection is done
                self.close()
                self.connection_lost(exc)
                return
            if reply is False:  # not whole yet
                return
            waiting, self._waiting = self._waiting, None
            if not waiting.done():
                waiting.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_exception(ConnectionError(f"Redis closed the connection: {exc}"))

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed or self._transport is None or self._transport.is_closing():
            raise ConnectionError("the connection to Redis is closed")
        self._waiting = asyncio.get_running_loop().create_future()
        self._transport.write(command)
        return self._waiting

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


def pack(*parts: str | bytes) -> bytes:
    """A command as Redis reads it: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class LoopScript:
    """One Lua script, run with EVALSHA over pooled connections of the running loop."""

    def __init__(self, url: str, script: str, timeout: float, pool_size: int = 64) -> None:
        target = urllib.parse.urlsplit(url)
        if target.scheme not in ("redis", "rediss"):
            raise ValueError(f"REDIS_URL: redis:// or rediss:// on an event loop, not {url!r}")
        query = urllib.parse.parse_qs(target.query)
        self._host = target.hostname or "localhost"
        self._port = target.port or 6379
        self._ssl = ssl.create_default_context() if target.scheme == "rediss" else None
        self._setup: list[bytes] = []
        password = urllib.parse.unquote(target.password) if target.password else None
        if password is not None:
            user = urllib.parse.unquote(target.username) if target.username else ""
            self._setup.append(pack("AUTH", user, password) if user else pack("AUTH", password))
        db = (target.path or "/").lstrip("/") or query.get("db", ["0"])[0]
        if db not in ("", "0"):
            self._setup.append(pack("SELECT", str(int(db))))
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()
        self._timeout = timeout
        self._pool_size = pool_size
        self._idle: collections.deque[_Connection] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        """The script's reply; ConnectionError/TimeoutError, or ScriptError for Redis's."""
        params = [str(len(keys)), *keys, *(str(a) for a in args)]
        async with asyncio.timeout(self._timeout):
            reply = await self._run(pack("EVALSHA", self._sha, *params))
            if _is_error(reply) and str(reply).startswith("NOSCRIPT"):
                reply = await self._run(pack("EVAL", self._script, *params))
        if _is_error(reply):
            raise ScriptError(str(reply))
        return reply

    async def _run(self, command: bytes) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a connection belongs to the loop that opened it
            self._idle.clear()
            self._loop = loop
        connection = self._idle.pop() if self._idle else None
        reused = connection is not None  # only connections that have answered are pooled
        while True:
            if connection is None or connection.closed:
                connection = await self._connect()
                reused = False
            try:
                reply = await connection.send(command)
            except ConnectionError:
                connection.close()
                if not reused:
                    raise
                connection, reused = None, False  # closed while idle: once more, new
                continue
            except BaseException:  # timed out or cancelled: its reply may still come
                connection.close()
                raise
            if len(self._idle) < self._pool_size:
                self._idle.append(connection)
            else:
                connection.close()
            return reply

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _transport, connection = await loop.create_connection(
            _Connection, self._host, self._port, ssl=self._ssl
        )
        try:
            for command in self._setup:
                reply = await connection.send(command)
                if _is_error(reply):
                    raise ScriptError(f"Redis refused the connection's setup: {reply}")
        except BaseException:
            connection.close()
            raise
        return connection


def _is_error(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError)
