"""An OTLP/HTTP trace receiver that keeps nothing: `python -m bench._otlp_sink <ready file>`.

What a traced server exports to in the benchmarks: a real endpoint on 127.0.0.1, in its own
process (its work is not the measured server's), as cheap as a receiver can be. It answers
every POST to /v1/traces with 200 and an empty ExportTraceServiceResponse (`{}`), after
counting the spans of a JSON body (the encoding `funcmart.adapters.tracing` sends); a body in
another encoding is counted in requests and bytes only. GET /stats answers the counts so far
as JSON: requests, spans, bytes, and undecodable (bodies that were not OTLP JSON).

Listens on a port of its own choosing; writes {"url", "pid"} to the ready file once it
listens. Stops on SIGTERM or SIGINT. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

PATH = "/v1/traces"


def count_spans(body: bytes) -> int | None:
    """Spans in an OTLP ExportTraceServiceRequest in JSON; None when it is not one."""
    try:
        request = json.loads(body)
        return sum(
            len(scope.get("spans") or ())
            for resource in request.get("resourceSpans") or ()
            for scope in resource.get("scopeSpans") or ()
        )
    except (ValueError, AttributeError, TypeError):
        return None


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for an exporter that keeps its connection
    counts: ClassVar[dict[str, int]] = {"requests": 0, "spans": 0, "bytes": 0, "undecodable": 0}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, b'{"message": "not found"}')
            return
        spans = count_spans(body) if "json" in (self.headers.get("Content-Type") or "") else None
        with self.lock:
            self.counts["requests"] += 1
            self.counts["bytes"] += len(body)
            if spans is None:
                self.counts["undecodable"] += 1
            else:
                self.counts["spans"] += spans
        self._answer(200, b"{}")

    def do_GET(self) -> None:
        if self.path != "/stats":
            self._answer(404, b'{"message": "not found"}')
            return
        with self.lock:
            body = json.dumps(self.counts).encode()
        self._answer(200, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return None


def main() -> None:
    ready = Path(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.start()
    port = server.server_address[1]
    partial = ready.with_name(ready.name + ".partial")
    partial.write_text(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}))
    partial.rename(ready)  # whole, or not there
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


if __name__ == "__main__":
    main()
