"""The benchmarks at a tiny size, so that they cannot rot: every section runs end to end
(cold starts with every tracing mode, funcmart beside FastAPI and Flask with tracing off and
on, the gateway under load, the pipeline sweep against Celery, capacity accounting, scale) and
the report and plot are written. No timing is asserted: that is `make bench`'s job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from funcmart_hosts.gateway.template import ROOT

SECTIONS = (
    "## Targets",
    "## 1. Cold start",
    "## 2. GetProduct cache hits: funcmart beside FastAPI and Flask",
    "## 3. HTTP through the local gateway",
    "## 4. Pipeline throughput",
    "## 5. DynamoDB cost",
    "## 6. Scale",
)


@pytest.mark.timeout(600)
def test_every_benchmark_runs_at_a_tiny_size_and_writes_its_report(tmp_path: Path):
    out = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out.read_text()
    for section in SECTIONS:
        assert section in report
    # every answer of every peer cell was checked and right; exactly once on both sides
    peers = report.split("## 2.")[1].split("## 3.")[0]
    assert "all right" in peers
    assert "WRONG" not in peers
    # tracing off and on: the cold start's TracingModes and its target, the traced server's
    # spans counted by the sink it exported to
    assert "| P1 tracing on costs a cold start" in report
    coldstart = report.split("## 1.")[1].split("## 2.")[0]
    for mode in ("xray (the default", "| off |", "otlp, 10% sampled"):
        assert mode in coldstart
    assert "on at 10% / off, OpenTelemetry installed" in peers
    exported = re.search(r"the sink received ([\d,]+) spans", peers)
    assert exported is not None
    assert int(exported.group(1).replace(",", "")) > 0
    pipeline = report.split("## 4.")[1].split("## 5.")[0]
    assert "exactly once" in pipeline
    assert "NO" not in pipeline
    assert out.with_suffix(".png").stat().st_size > 10_000
