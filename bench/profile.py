"""Where a server's CPU goes under load: py-spy samples the running process (no restart, no
instrumentation) while the load generator drives it, and each sample is charged to the layer
of its innermost frame. Run by `bench.peers` on the Knative host at concurrency 8, and on the
same host with tracing on.

Layers are read from the frame's file: tracing (OpenTelemetry, where it is on), the HTTP
server and event loop (uvicorn, httptools, uvloop, asyncio), the host's ASGI app, the edge
(routing, auth, the API Gateway event), the function's entry point, the Redis client, metrics,
JSON, logging, Powertools, the function's own services and domain, the rest. A sample whose
innermost frame is in no layer (the standard library, the interpreter) is charged to its
nearest caller that is.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (layer, patterns on the innermost frame's file), first match wins.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "tracing: OpenTelemetry, funcmart's spans and their export",
        ("/opentelemetry/", "/funcmart/adapters/tracing"),
    ),
    (
        "Knative host: ASGI app, access line",
        ("/funcmart_hosts/knative/", "/funcmart_hosts/serving"),
    ),
    ("edge: routing, auth, API Gateway event", ("/funcmart_hosts/gateway/",)),
    ("function entry point (rate-limit decision, answer)", ("/funcmart/entrypoints/",)),
    ("GetProduct's services and domain", ("/funcmart/services/", "/funcmart/domain/")),
    ("metrics", ("/funcmart/adapters/metrics",)),
    (
        "Redis adapter and client (funcmart.adapters.redis_loop, hiredis)",
        ("/funcmart/adapters/redis", "/redis/"),
    ),
    ("JSON", ("/json/",)),
    ("logging", ("/logging/",)),
    ("Powertools", ("/aws_lambda_powertools/",)),
    (
        "HTTP server and event loop (uvicorn, httptools, uvloop, asyncio)",
        (
            "/uvicorn/",
            "/httptools/",
            "/uvloop/",
            "/asyncio/",
            "/selectors.py",
            "/socket.py",
        ),
    ),
    ("contextvars, threads", ("/threading.py", "/concurrent/futures/", "/contextvars")),
)
OTHER = "other (standard library, interpreter)"
_FILE = re.compile(r"\(([^():]+)(?::\d+)?\)\s*$")


@dataclass
class Profile:
    samples: int
    layers: list[tuple[str, float]] = field(default_factory=list)  # (layer, share 0..1)
    concurrency: int = 8
    seconds: float = 0
    command: str = ""
    error: str | None = None


def layer_of(frame: str) -> str:
    match = _FILE.search(frame)
    path = "/" + (match.group(1) if match else frame).lstrip("/")
    for name, patterns in LAYERS:
        if any(p in path for p in patterns):
            return name
    return OTHER


def charged(frames: list[str]) -> str:
    """The layer a sample is charged to: its innermost frame's, or where that frame is the
    standard library or the interpreter (a dict copy, a socket send), its nearest caller's
    that belongs to a layer."""
    for frame in reversed(frames):
        layer = layer_of(frame)
        if layer != OTHER:
            return layer
    return OTHER


def summarize(collapsed: str) -> tuple[int, list[tuple[str, float]]]:
    """Samples per layer from py-spy's raw (collapsed) output: `f1;f2;...;fN count` lines
    (outermost frame first)."""
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames:
            counts[charged(frames)] += int(n)
    total = sum(counts.values())
    if not total:
        return 0, []
    return total, [(name, c / total) for name, c in counts.most_common()]


def py_spy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path(sys.executable).parent / "py-spy"] if p.exists()), None
    )


def under_load(
    server: Any,
    requests: list[list[Any]],
    concurrency: int,
    seconds: float,
    logs: Path,
    expect: dict[str, Any] | None = None,
    name: str = "knative",
) -> Profile:
    """py-spy on `server.pid` while the load generator runs `seconds` at `concurrency`."""
    from bench.latency import load

    tool = py_spy()
    profile = Profile(0, concurrency=concurrency, seconds=seconds)
    if tool is None or server.pid is None:
        profile.error = "py-spy is not installed (the bench extra installs it)"
        return profile
    out = logs / f"profile-{name}.txt"
    cmd = [tool, "record", "--pid", str(server.pid), "--duration", str(int(seconds))]
    cmd += ["--rate", "200", "--gil", "--format", "raw", "--nonblocking", "--output", str(out)]
    profile.command = " ".join(["py-spy", *cmd[1:3], "<pid>", *cmd[4:-1], "profile.txt"])
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load(server.url, concurrency, requests, concurrency * 5, seconds, expect=expect, cycle=True)
    try:
        _, err = spy.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        spy.kill()
        profile.error = "py-spy did not finish"
        return profile
    if spy.returncode != 0 or not out.exists():
        profile.error = f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}"
        return profile
    profile.samples, profile.layers = summarize(out.read_text())
    return profile
