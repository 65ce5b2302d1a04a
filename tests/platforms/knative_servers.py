"""functions-framework servers for the Knative adapter, started as the image starts them
(`python -m funcmart_hosts.knative`), each on a free port of 127.0.0.1 and stopped by pid.
Also a CloudEvents sink that records what a function publishes to its broker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from funcmart_hosts.gateway.auth import JwtConfig, mint_token
from funcmart_hosts.gateway.template import ROOT
from funcmart_hosts.local import services

ISSUER = "https://funcmart.test/"
AUDIENCE = "funcmart"
SECRET = "knative-test-secret-of-at-least-32-bytes"
# The key events are signed with (the Secret's FUNCMART_EVENT_KEY on a cluster).
EVENT_KEY = "knative-test-event-key-of-at-least-32-bytes"
JWT = JwtConfig(ISSUER, (AUDIENCE,))


def token(subject: str, groups: tuple[str, ...] = (), **claims: Any) -> str:
    return mint_token(SECRET, JWT, subject, groups, **claims)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_url: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")[:6000]


@contextlib.contextmanager
def knative_server(function: str, env: dict[str, str]) -> Iterator[Server]:
    """One function under functions-framework, chosen by FUNCMART_FUNCTION (the template's
    logical id), with `env` on top of the test's own environment."""
    port = services.free_port()
    metrics_port = services.free_port()
    full = dict(os.environ)
    full.update(
        FUNCMART_FUNCTION=function,
        FUNCMART_JWT_ISSUER=ISSUER,
        FUNCMART_JWT_AUDIENCE=AUDIENCE,
        FUNCMART_JWT_SECRET=SECRET,
        FUNCMART_EVENT_KEY=EVENT_KEY,
        METRICS_BACKEND="inprocess",
        WORKERS="1",
        THREADS="2",
        METRICS_PORT=str(metrics_port),
        METRICS_HOST="127.0.0.1",
        POWERTOOLS_SERVICE_NAME="funcmart",
        LOG_LEVEL="WARNING",
        PAYMENT_PROVIDER="simulator",  # the tests pay with the simulator's tokens
    )
    full.update(env)
    fd, name = tempfile.mkstemp(prefix=f"knative-{function}-", suffix=".log")
    log = Path(name)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "funcmart_hosts.knative"],
            cwd=ROOT / "functions",
            env={**full, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(
        f"http://127.0.0.1:{port}", proc, log, f"http://127.0.0.1:{metrics_port}/metrics"
    )
    try:
        try:
            services.wait_for_port(port, 30, proc)
            services.wait_for_port(metrics_port, 30, proc)
        except services.ServiceError as exc:
            raise AssertionError(f"{function} did not start: {exc}\n{server.output()}") from exc
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.unlink(missing_ok=True)


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


@dataclass
class Sink:
    """A stand-in for the broker's ingress: records every CloudEvent POSTed to it."""

    url: str
    received: list[Received] = field(default_factory=list)


@contextlib.contextmanager
def cloudevents_sink() -> Iterator[Sink]:
    sink = Sink("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            sink.received.append(Received(headers, json.loads(raw) if raw else None))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/funcmart/default"
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="ce-sink")
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
