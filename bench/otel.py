"""Tracing in the benchmarks: OpenTelemetry as each deployment carries it, switched on as an
operator would switch it on, and exporting to a real receiver on 127.0.0.1.

- `environment`: this Python environment with OpenTelemetry as an image has it: none (the
  default image and the Lambda artifact without the OpenTelemetry layer) or the tracing set
  (`make image TRACING=1`, the template's OpenTelemetry layer: functions/requirements-tracing.txt
  without the SDK's metrics part). Every other package is this environment's own, linked, so
  that OpenTelemetry is the only difference between contenders.
- `on`: the variables that turn tracing on at `RATIO` (FUNCMART_TRACING=otlp, the SDK's
  parent-based trace-id ratio sampler, OTLP/HTTP to an endpoint).
- `sink`: bench/_otlp_sink.py in its own process, the endpoint, counting what it receives.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import sysconfig
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import FUNCTIONS, wait_until

RATIO = "0.1"  # the template's TracingSampleRatio and the ConfigMap's default
SAMPLER = "parentbased_traceidratio"
# What `make image TRACING=1` and the OpenTelemetry layer leave out of the SDK (Dockerfile,
# functions/Makefile: build-OpenTelemetry).
LEFT_OUT = ("opentelemetry", "sdk", "metrics")
NONE, TRACING = "none", "tracing"


def on(endpoint: str, ratio: str = RATIO) -> dict[str, str]:
    """The environment that turns tracing on, as docs/deploy.md says (the rest of the
    OpenTelemetry variables as the ConfigMap and the template set them)."""
    return {
        "FUNCMART_TRACING": "otlp",
        "OTEL_TRACES_SAMPLER": SAMPLER,
        "OTEL_TRACES_SAMPLER_ARG": ratio,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }


def tracing_distributions() -> set[str]:
    """The distributions the tracing lock pins, normalized names."""
    text = (FUNCTIONS / "requirements-tracing.lock").read_text()
    return {_normal(m) for m in re.findall(r"^([A-Za-z0-9_.\-]+)==", text, re.M)}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def environment(dest: Path, opentelemetry: str) -> Path:
    """A virtual environment at `dest` whose site-packages link to this one's, with
    OpenTelemetry as `opentelemetry` says (NONE or TRACING); its python. Built once per
    `dest`: an existing one is used again."""
    if opentelemetry not in (NONE, TRACING):
        raise ValueError(opentelemetry)
    python = dest / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    target = dest / "lib" / version / "site-packages"
    target.mkdir(parents=True, exist_ok=True)
    sources = dict.fromkeys(
        Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")
    )
    for site in sources:
        for entry in sorted(site.iterdir()):
            if entry.name.startswith("opentelemetry"):
                if opentelemetry == TRACING:
                    _check_tracing_set(entry)
                    _mirror(entry, target / entry.name, LEFT_OUT[1:] if entry.is_dir() else ())
                continue
            link = target / entry.name
            if not link.exists():
                link.symlink_to(entry)
    return python


def _check_tracing_set(entry: Path) -> None:
    """Only what the tracing lock pins stands for the image's OpenTelemetry."""
    if entry.name.endswith(".dist-info"):
        name = _normal(entry.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in tracing_distributions():
            raise RuntimeError(
                f"{entry.name} is installed here but not in functions/requirements-tracing.lock:"
                " this environment cannot stand for the tracing image"
            )


def _mirror(src: Path, dest: Path, leave_out: tuple[str, ...]) -> None:
    """`dest` as a copy of the directory tree `src` made of links, without the path
    `leave_out` (relative parts); a file or an untouched directory is one link."""
    if not leave_out or not src.is_dir():
        dest.symlink_to(src)
        return
    dest.mkdir()
    for child in sorted(src.iterdir()):
        if child.name == leave_out[0]:
            if len(leave_out) > 1:
                _mirror(child, dest / child.name, leave_out[1:])
            continue
        dest.joinpath(child.name).symlink_to(child)


def imports_opentelemetry(python: Path, module: str = "opentelemetry.sdk.trace") -> bool:
    """Whether `module` can be imported by that environment's python."""
    probe = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() == "True"


@dataclass
class Sink:
    """bench/_otlp_sink.py running: its URL (the OTLP endpoint) and its counts."""

    url: str
    proc: subprocess.Popen[bytes]

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as answer:
            counts: dict[str, int] = json.loads(answer.read())
        return counts

    def stop(self) -> None:
        from bench.backends import _stop

        _stop(self.proc)


@contextlib.contextmanager
def sink(logs: Path) -> Iterator[Sink]:
    """The sink, started here and stopped by its pid."""
    logs.mkdir(parents=True, exist_ok=True)
    ready = logs / f"otlp-sink-{uuid.uuid4().hex[:6]}.ready"
    with (logs / "otlp-sink.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench._otlp_sink", str(ready)],
            cwd=Path(__file__).resolve().parents[1],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Sink("", proc)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, 30, "the OTLP sink")
        if proc.poll() is not None:
            raise RuntimeError(f"the OTLP sink exited with {proc.returncode}; see otlp-sink.log")
        running.url = json.loads(ready.read_text())["url"]
        yield running
    finally:
        running.stop()
