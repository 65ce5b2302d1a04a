"""The load generator, run as its own process: `python -m bench._loadgen '<json spec>'`.

A minimal asyncio HTTP/1.1 client over keep-alive connections (one per concurrent caller),
cheaper per request than a general-purpose client, so that as much of the second core as
possible is left to the server. Every caller takes the next request from one shared list
until the list or the time is used up; latency is measured from the request's first byte
written to its response's last byte read.

Spec: host, port, concurrency, requests ([method, path, headers, body] or, to check each
answer's body, [method, path, headers, body, text the body must contain]), warmup (requests
sent first and not measured), max_seconds, cycle (true: go round the list until max_seconds
have passed), expect (optional {"status": 200, "header": ["x-cache", "HIT"]}: an answer
with another status, without that header value or without the body text counts as a
failure), out (the file to write the answer to). Writes one JSON object: latencies_ms
(sorted), statuses, failures, failure (the first one, described), elapsed_s.

Runs on uvloop when it is installed (the bench extra installs it), as the servers may.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def encode(
    host: str, port: int, method: str, path: str, headers: dict[str, str], body: str
) -> bytes:
    data = body.encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if data or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def checker(spec: dict[str, Any]) -> Any:
    """The check of one answer: None when it is as expected, else what was wrong."""
    expect = spec.get("expect") or {}
    status_ok = int(expect.get("status", 0))
    name, value = (expect.get("header") or ["", ""])[:2]

    def check(status: int, headers: dict[str, str], body: bytes, text: bytes) -> str | None:
        if status_ok and status != status_ok:
            return f"status {status}: {body[:200]!r}"
        if name and headers.get(name) != value:
            return f"{name}: {headers.get(name)!r}, not {value!r}"
        if text and text not in body:
            return f"the body lacks {text!r}: {body[:200]!r}"
        return None

    return check


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], int(spec["port"])
    raws = [encode(host, port, *r[:4]) for r in spec["requests"]]
    texts = [r[4].encode() if len(r) > 4 else b"" for r in spec["requests"]]
    check = checker(spec)
    cycle = bool(spec.get("cycle"))
    failures: list[str] = []
    warmup = int(spec.get("warmup", 0))
    concurrency = int(spec["concurrency"])
    deadline_s = float(spec.get("max_seconds", 30))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    position = 0
    deadline = 0.0

    async def caller(conn: Connection, measured: bool) -> None:
        nonlocal position
        while True:
            if measured and time.perf_counter() > deadline:
                return
            if position >= (len(raws) if measured else warmup) and not (measured and cycle):
                return
            n = position % len(raws)
            position += 1
            started = time.perf_counter()
            try:
                status, headers, body = await conn.request(raws[n])
                wrong = check(status, headers, body, texts[n])
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                conn.close()
                status, wrong = 599, f"no answer: {exc!r}"
            if measured:
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if wrong is not None:
                    failures.append(wrong)

    conns = [Connection(host, port) for _ in range(concurrency)]
    if warmup:
        await asyncio.gather(*(caller(c, False) for c in conns))
    position = warmup
    started = time.perf_counter()
    deadline = started + deadline_s
    await asyncio.gather(*(caller(c, True) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    latencies.sort()
    return {
        "latencies_ms": latencies,
        "statuses": statuses,
        "failures": len(failures),
        "failure": failures[0] if failures else None,
        "elapsed_s": elapsed,
    }


def main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop
    except ImportError:
        answer = asyncio.run(run(spec))
    else:
        answer = uvloop.run(run(spec))
    # A file, not stdout: the event loop may leave the pipe non-blocking, where an answer of
    # hundreds of KB (one latency per request) would be cut short.
    Path(spec["out"]).write_text(json.dumps(answer))


if __name__ == "__main__":
    main()
