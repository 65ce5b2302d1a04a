"""The load generator, run as its own process: `python -m bench._loadgen '<json spec>'`.

A minimal asyncio HTTP/1.1 client over keep-alive connections (one per concurrent caller),
cheaper per request than a general-purpose client, so that as much of the second core as
possible is left to the server. Every caller takes the next request from one shared list
until the list or the time is used up; latency is measured from the request's first byte
written to its response's last byte read.

Spec: host, port, concurrency, requests ([method, path, headers, body]), warmup (requests
sent first and not measured), max_seconds. Prints one JSON object: latencies_ms (sorted),
statuses, elapsed_s, sent.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key == "content-length":
                length = int(value.strip())
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status

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


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    host, port = spec["host"], int(spec["port"])
    raws = [encode(host, port, *r) for r in spec["requests"]]
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
            if position >= (len(raws) if measured else warmup):
                return
            raw = raws[position]
            position += 1
            started = time.perf_counter()
            try:
                status = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                status = 599
            if measured:
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[str(status)] = statuses.get(str(status), 0) + 1

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
    return {"latencies_ms": latencies, "statuses": statuses, "elapsed_s": elapsed}


def main() -> None:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
