"""`make dev` as a developer lives with it: an edited handler answers anew without a restart,
the table, queues and Redis keep their data, a taken port is named before anything starts,
and the functions' logs are lines a person reads."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from funcmart_hosts.gateway.template import ROOT
from funcmart_hosts.local.services import free_port
from tests.e2e.test_local_commands import CLI, clean_env, wait_for_http

EDITED = """

import funcmart.observability as _observability

_first = handler


def handler(event, context):
    response = _first(event, context)
    body = json.loads(response["body"])
    body["edited"] = True
    response["body"] = json.dumps(body)
    _observability.logger.info("health answered after the edit", extra={"edited": True})
    return response
"""


def checkout(tmp_path: Path) -> Path:
    """template.yaml and the handler modules in a folder of their own (the core stays the
    installed one), so that the test edits copies, never the repository."""
    root = tmp_path / "app"
    (root / "functions").mkdir(parents=True)
    shutil.copy(ROOT / "template.yaml", root / "template.yaml")
    for handler in (ROOT / "functions").glob("*.py"):
        shutil.copy(handler, root / "functions" / handler.name)
    return root


def token(role: str, sub: str) -> str:
    done = subprocess.run(
        [*CLI, "token", "--role", role, "--sub", sub], capture_output=True, timeout=60, check=True
    )
    return done.stdout.decode().strip()


def wait_until(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout}s (last: {last!r})")


@pytest.fixture
def dev(tmp_path: Path):  # type: ignore[no-untyped-def]
    """`dev` on a copy of the handlers, on embedded moto and Redis, with hot reload."""
    root = checkout(tmp_path)
    port = free_port()
    env = clean_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    out, err = (tmp_path / "out.log").open("wb"), (tmp_path / "err.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "dev", "--port", str(port), "--template", str(root / "template.yaml")],
        stdout=out,
        stderr=err,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", proc, timeout=90)
        yield root, base, proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        out.close()
        err.close()


def test_an_edited_handler_answers_anew_and_the_data_stays(dev) -> None:  # type: ignore[no-untyped-def]
    root, base, proc, logs = dev
    admin = {"Authorization": f"Bearer {token('admin', 'ops')}"}
    alice = {"Authorization": f"Bearer {token('customer', 'alice')}"}
    # GIVEN a product in the embedded table and a line in alice's cart in the embedded Redis
    product = {
        "name": "Reload Lamp",
        "category": "books",
        "price": {"amount": 999, "currency": "EUR"},
        "stock": 3,
    }
    made = httpx.post(f"{base}/products", json=product, headers=admin, timeout=30)
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    put = httpx.put(f"{base}/cart/items/{pid}", json={"quantity": 2}, headers=alice, timeout=30)
    assert put.status_code == 200, put.text
    before = httpx.get(f"{base}/health", timeout=30).json()
    assert "edited" not in before

    # WHEN the Health handler's code is edited and saved
    health = root / "functions" / "health.py"
    health.write_text(
        health.read_text().replace(
            "from funcmart import __version__", "import json\nfrom funcmart import __version__", 1
        )
        + EDITED
    )

    # THEN the next answers come from the new code, with no restart by hand
    def edited() -> dict | None:  # type: ignore[type-arg]
        try:
            body = httpx.get(f"{base}/health", timeout=10).json()
        except (httpx.TransportError, ValueError):
            return None
        return body if body.get("edited") else None

    after = wait_until(edited, 90, "the edited answer")
    assert after["status"] == before["status"]
    assert after["version"] == before["version"]
    # AND the table and Redis kept what was written before the reload
    got = httpx.get(f"{base}/products/{pid}", timeout=30)
    assert got.status_code == 200
    assert got.json()["name"] == "Reload Lamp"
    cart = httpx.get(f"{base}/cart", headers=alice, timeout=30)
    assert cart.status_code == 200, cart.text
    assert [(i["productId"], i["quantity"]) for i in cart.json()["lines"]] == [(pid, 2)]
    assert proc.poll() is None  # the same `make dev` all along
    err = (logs / "err.log").read_text()
    assert "functions/health.py changed: restarting the functions" in err
    assert err.count("created table") == 1  # the new functions found the table in place

    # AND the function's log line is text a person reads, with Powertools' keys in it
    out = wait_until(
        lambda: (
            "health answered after the edit" in (logs / "out.log").read_text()
            and (logs / "out.log").read_text()
        ),
        30,
        "the function's log line",
    )
    line = next(x for x in out.splitlines() if "health answered after the edit" in x)
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
    assert " INFO  Health  health answered after the edit" in line
    assert "edited=true" in line
    assert "correlation_id=" in line
    # AND the reload printed one line, not the banner again
    assert out.count("ready in ") == 1
    assert "reloaded in " in out


def test_a_change_in_the_core_restarts_the_functions_too(dev) -> None:  # type: ignore[no-untyped-def]
    _, base, proc, logs = dev
    core = ROOT / "functions" / "funcmart" / "domain" / "money.py"
    stat = core.stat()
    try:
        # WHEN a module of the core the functions import is saved (same content, new mtime)
        os.utime(core, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        # THEN the functions restart and answer again
        wait_until(
            lambda: "domain/money.py changed" in (logs / "err.log").read_text(),
            30,
            "the reload",
        )
    finally:
        os.utime(core, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    resp = wait_for_http(f"{base}/health", proc, timeout=90)
    assert resp.status_code == 200
    assert proc.poll() is None


def test_a_taken_port_is_named_with_its_fix_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [*CLI, "dev", "--port", str(port)],
            capture_output=True,
            env=clean_env(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"),
            timeout=60,
        )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "make dev PORT=" in err
    # Nothing was started or created first.
    assert "created table" not in err
    assert "moto" not in err
    assert done.stdout == b""
    assert time.monotonic() - started < 30


def test_ctrl_c_stops_dev_and_its_functions_cleanly(dev) -> None:  # type: ignore[no-untyped-def]
    import signal

    from tests.support import report

    _root, _base, proc, logs = dev
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, "dev runs its functions in a child process"
    # WHEN Ctrl-C reaches dev and its functions (the terminal signals the whole group)
    started = time.monotonic()
    for pid in [proc.pid, *map(int, children)]:
        os.kill(pid, signal.SIGINT)
    # THEN both stop on their own, cleanly, and leave no process behind
    assert proc.wait(30) == 0
    report.add("dev stop", f"Ctrl-C to exit: {(time.monotonic() - started) * 1000:.0f} ms")
    for pid in map(int, children):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "Traceback" not in (logs / "err.log").read_text()
