"""The newcomer's commands: `make test` checks its prerequisites before anything else and
names what is missing in one line; `make invoke` with a wrong name lists the right ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from funcmart_hosts.gateway.template import ROOT

DX = ROOT / "tools" / "dx.sh"
# What the prerequisites check itself runs, besides the tools it looks for.
BASICS = ("bash", "date", "sed", "head", "make", "env")


def bin_dir(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only `tools` (and the basics): what a machine without the rest sees."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    for tool in (*BASICS, *tools):
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run this test"
        (d / tool).symlink_to(found)
    return str(d)


def run(cmd: list[str], path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env={"HOME": os.environ.get("HOME", "/root"), "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def test_prerequisites_pass_on_this_machine(redis_url: str) -> None:
    done = run(
        ["bash", str(DX), "prereqs", sys.executable], os.environ["PATH"], REDIS_URL=redis_url
    )
    assert done.returncode == 0, done.stderr
    assert "==> prerequisites: Python" in done.stderr
    assert done.stdout == ""


def test_a_machine_without_java_npm_and_redis_is_told_what_to_install(tmp_path: Path) -> None:
    path = bin_dir(tmp_path)
    done = run(["bash", str(DX), "prereqs", sys.executable], path, REDIS_URL=closed_port_url())
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("make test needs: ")
    for package in ("default-jre-headless", "apt-get install npm", "apt-get install redis-server"):
        assert package in line, line


def test_a_redis_that_answers_stands_in_for_redis_server(tmp_path: Path, redis_url: str) -> None:
    path = bin_dir(tmp_path, "java", "npm")
    done = run(["bash", str(DX), "prereqs", sys.executable], path, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr


def test_a_missing_python_is_named(tmp_path: Path, redis_url: str) -> None:
    path = bin_dir(tmp_path, "java", "npm")
    done = run(
        ["bash", str(DX), "prereqs", str(tmp_path / "python3.13")], path, REDIS_URL=redis_url
    )
    assert done.returncode == 1
    assert "Python 3.11-3.13" in done.stderr
    assert "apt-get install" in done.stderr


def test_make_test_stops_at_the_prerequisites_before_lint_or_install(
    tmp_path: Path, redis_url: str
) -> None:
    path = bin_dir(tmp_path, "npm")  # no java
    done = run(["make", "test", f"PYTHON={sys.executable}"], path, REDIS_URL=redis_url)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Java 17+ for DynamoDB Local (apt-get install default-jre-headless)" in output
    for later in ("ruff", "mypy", "pytest", "==> install", "npm install"):
        assert later not in output, output


@pytest.mark.parametrize(
    ("fn", "expect"),
    [("ListProduct", "Did you mean ListProducts?"), ("Unknown", "Functions: ArchiveProduct, ")],
)
def test_make_invoke_with_an_unknown_function_lists_the_valid_names(fn: str, expect: str) -> None:
    done = run(
        [
            "make",
            "-s",
            "invoke",
            f"FN={fn}",
            "EVENT=events/health.json",
            f"PYTHON={sys.executable}",
        ],
        os.environ["PATH"],
    )
    assert done.returncode != 0
    assert expect in done.stderr
    assert "ListProducts" in done.stderr
    assert "ReconcileOrders" in done.stderr
    assert done.stdout == ""  # stdout is for a response only


def test_make_invoke_without_an_event_lists_the_functions_samples() -> None:
    done = run(
        ["make", "-s", "invoke", "FN=GetProduct", f"PYTHON={sys.executable}"], os.environ["PATH"]
    )
    assert done.returncode != 0
    assert "events/get_product.json" in done.stderr
