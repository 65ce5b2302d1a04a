"""The benchmarks at a tiny size, so that they cannot rot: every section runs end to end
(cold starts, the gateway under load, both pipelines, capacity accounting, scale) and the
report and plot are written. No timing is asserted: that is `make bench`'s job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from funcmart_hosts.gateway.template import ROOT

SECTIONS = (
    "## 1. Cold start",
    "## 2. HTTP latency",
    "## 3. Pipeline throughput",
    "## 4. DynamoDB cost",
    "## 5. Scale",
)


def test_every_benchmark_runs_at_a_tiny_size_and_writes_its_report(tmp_path: Path):
    out = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out.read_text()
    for section in SECTIONS:
        assert section in report
    assert "exactly once" in report
    assert "NO" not in report.split("## 3.")[1].split("## 4.")[0]
    assert out.with_suffix(".png").stat().st_size > 10_000
