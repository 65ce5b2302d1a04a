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


def test_make_test_names_the_packages_it_will_install_before_it_starts(
    tmp_path: Path, redis_url: str
) -> None:
    # java and npm here, kubectl and promtool not: as root with apt-get, make test installs
    # them, and says so on the prerequisites' lines, before any install or test.
    tools = ["java", "npm", "id", "apt-get"] if shutil.which("apt-get") else ["java", "npm", "id"]
    path = bin_dir(tmp_path, *tools)
    done = run(["bash", str(DX), "prereqs", sys.executable, "checkers"], path, REDIS_URL=redis_url)
    if os.getuid() == 0 and shutil.which("apt-get"):
        assert done.returncode == 0, done.stderr
        assert (
            "==> make test will install with apt-get (missing here): kubernetes-client prometheus"
            in done.stderr
        )
    else:
        assert done.returncode == 1
        assert "kubectl and promtool" in done.stderr
    # Without `checkers` (make test-fast) they are not asked for.
    done = run(["bash", str(DX), "prereqs", sys.executable], path, REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    assert "apt-get" not in done.stderr


def test_make_test_asks_for_the_checkers_and_test_fast_does_not() -> None:
    for target, wanted in (("test", True), ("test-fast", False)):
        done = subprocess.run(
            ["make", "-n", target, f"PYTHON={sys.executable}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        (line,) = [x for x in done.stdout.splitlines() if "dx.sh prereqs" in x]
        assert line.rstrip().endswith("checkers") is wanted, line


def test_the_lambda_build_finds_python_as_make_dev_does(tmp_path: Path) -> None:
    """`sam build` runs functions/Makefile: a pyenv shim for a version not selected answers
    "command not found" for python3.13, yet the project's Makefile finds 3.13 in pyenv."""
    found = subprocess.run(
        ["bash", str(DX), "python-of", "3.13"], capture_output=True, text=True, check=False
    ).stdout.strip()
    assert found, "make test needs the template's runtime, Python 3.13, for the Lambda build"
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3.13"
    shim.write_text('#!/bin/sh\necho "pyenv: python3.13: command not found" >&2\nexit 127\n')
    shim.chmod(0o755)
    done = subprocess.run(
        ["make", "-n", "-C", "functions", "build-Dependencies", f"ARTIFACTS_DIR={tmp_path}"],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pip = next(x for x in done.stdout.splitlines() if " -m pip install" in x)
    assert pip.split()[0] != "python3.13", pip  # the shim that fails
    assert Path(pip.split()[0]).resolve() == Path(found).resolve(), pip
