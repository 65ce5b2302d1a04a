"""Hot reload for `dev`: the functions restart when their code, the core or the template
changes, and the table, the queues and Redis stay.

    dev (this process)                          the functions (a child process)
    ─ holds the gateway's listening socket ──▶  gateway, pollers, schedules, handlers
    ─ runs the embedded moto server and Redis   pointed at them by AWS_ENDPOINT_URL_* and
    ─ watches the code; on a change, stops         REDIS_URL; provisioning finds the table and
      the child (in-flight work finishes)          queues in place, seeding finds the catalog
      and starts a new one

A Python process cannot reliably forget modules it imported (the handlers, the core, their
module-level clients and metrics registry), so a new process is the only clean reload. The
listening socket stays open in between: a request sent during a restart waits in its backlog
and is answered by the new child instead of being refused.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

log = logging.getLogger("local-platform")

POLL_SECONDS = 0.4
SETTLE_SECONDS = 0.2  # editors write a file in several steps
STOP_GRACE_SECONDS = 15.0
WATCHED_SUFFIXES = (".py", ".yaml", ".yml", ".json")


def snapshot(roots: Iterable[Path]) -> dict[Path, int]:
    """mtime of every watched file under `roots` (files or folders), caches skipped."""
    seen: dict[Path, int] = {}
    for root in roots:
        paths = [root] if root.is_file() else root.rglob("*")
        for path in paths:
            if path.suffix not in WATCHED_SUFFIXES or "__pycache__" in path.parts:
                continue
            try:
                seen[path] = path.stat().st_mtime_ns
            except OSError:
                continue  # deleted between listing and stat
    return seen


def changed(before: dict[Path, int], after: dict[Path, int]) -> list[Path]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


class Reloader:
    """Runs `command` as the functions' process with `sock` inherited, restarts it when a
    file under `roots` changes, and stops it when `stop` is set."""

    def __init__(
        self,
        command: Sequence[str],
        sock: socket.socket,
        roots: Sequence[Path],
        env: dict[str, str],
        stop: threading.Event,
        *,
        base: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.sock = sock
        self.roots = list(roots)
        self.env = env
        self.stop = stop
        self.base = base
        self.child: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def _spawn(self) -> None:
        fd = self.sock.fileno()
        again = ["--reloaded"] if self.restarts else []  # one line, not the whole banner
        self.child = subprocess.Popen(
            [*self.command, "--listen-fd", str(fd), *again], pass_fds=(fd,), env=self.env
        )

    def _stop_child(self) -> int | None:
        child, self.child = self.child, None
        if child is None:
            return None
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                return child.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning(
                    "the functions did not stop within %.0fs; killing them", STOP_GRACE_SECONDS
                )
                child.kill()
        return child.wait()

    def _name(self, path: Path) -> str:
        if self.base is not None:
            try:
                return str(path.relative_to(self.base))
            except ValueError:
                pass
        return str(path)

    def run(self) -> int:
        """Until `stop`: watch, restart on change. Returns 0 after a clean stop."""
        files = snapshot(self.roots)
        self._spawn()
        reported_exit = False
        try:
            while not self.stop.wait(POLL_SECONDS):
                child = self.child
                if child is not None and child.poll() is not None and not reported_exit:
                    log.error(
                        "the functions stopped (exit %s); fix the code and save: they "
                        "restart on the next change",
                        child.returncode,
                    )
                    reported_exit = True
                now = snapshot(self.roots)
                if now == files:
                    continue
                time.sleep(SETTLE_SECONDS)
                now = snapshot(self.roots)
                edits = changed(files, now)
                files = now
                shown = ", ".join(self._name(p) for p in edits[:3])
                more = f" and {len(edits) - 3} more" if len(edits) > 3 else ""
                log.info(
                    "%s%s changed: restarting the functions (table, queues and Redis stay)",
                    shown,
                    more,
                )
                self._stop_child()
                self.restarts += 1
                reported_exit = False
                self._spawn()
        finally:
            self._stop_child()
        return 0


def watch_roots(template_path: Path, code_dirs: Iterable[Path]) -> list[Path]:
    """What a change restarts the functions for: the template, every function's code folder,
    and the folders of the packages they import from this checkout (the core, the hosts)."""
    import funcmart

    roots = {template_path.resolve()}
    roots.update(p.resolve() for p in code_dirs)
    roots.add(Path(funcmart.__file__).resolve().parent)
    return sorted(roots)


def parent_watchdog(stop: threading.Event) -> None:
    """In the child: stop when the reloading parent is gone (killed without a chance to
    stop us), so that no orphan keeps the port."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                log.warning("the reloading parent is gone; stopping")
                stop.set()

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def python_command(module: str) -> list[str]:
    return [sys.executable, "-m", module]
