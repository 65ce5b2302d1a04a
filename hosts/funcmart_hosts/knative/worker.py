"""The gunicorn worker the Knative host runs: gunicorn's threaded worker, with the answers
gunicorn gives by itself (a request it refuses before the app sees it: a malformed request
line or method, conflicting Content-Length headers, an unknown transfer coding) written as
problem+json like every other answer, instead of gunicorn's HTML page.

gunicorn decides the status; this worker only rewrites the body it sends. Nothing from the
request reaches a header, and the detail is gunicorn's reason phrase, not its message (which
can echo what the client sent).
"""

from __future__ import annotations

from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from funcmart.problems import PROBLEM_JSON, problem_body


class _Captured:
    """Stands in for the client socket while gunicorn writes its error page: keeps the bytes,
    passes everything else to the real socket."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn then writes with sendall, without changing blocking mode

    def sendall(self, data: bytes) -> None:
        self.data += data

    def send(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def status_of(page: bytes) -> tuple[int, str]:
    """The status code and reason of the HTTP response in `page` (500 if unreadable)."""
    line = page.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    try:
        code = int(parts[1])
    except (IndexError, ValueError):
        return 500, "Internal Server Error"
    reason = parts[2] if len(parts) > 2 else "Error"
    return code, "".join(c for c in reason if c.isprintable())[:100] or "Error"


def problem_response(code: int, reason: str) -> bytes:
    body = problem_body(code, reason, f"the server could not read the request ({reason})")
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    return head.encode("latin-1") + body.encode()


class ProblemThreadWorker(ThreadWorker):  # type: ignore[misc]
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Captured(client)
        super().handle_error(req, captured, addr, exc)
        if not captured.data:
            return
        code, reason = status_of(captured.data)
        try:
            util.write_nonblock(client, problem_response(code, reason))
        except Exception:  # the client went away: nothing to answer
            self.log.debug("could not send the error answer")
