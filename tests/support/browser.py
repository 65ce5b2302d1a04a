"""A real browser for the console's tests: Debian's Chromium driven by Playwright.

Playwright's own browser download cannot run here (nothing but package registries is
reachable), so the system Chromium (`make checkers` installs it) is launched by path, headless,
with a fresh profile each time and nothing that calls out (updates, sync, QUIC).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FUNCMART_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where `make screenshots` wants the pictures of the main views (unset: none are taken).
SCREENSHOTS = os.environ.get("FUNCMART_CONSOLE_SCREENSHOTS")


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A browser context (a fresh profile) whose pages are `width` x `height`."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: `make checkers` installs Debian's chromium (apt-get)"
        )
    profile = tempfile.mkdtemp(prefix="funcmart-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=ARGS,
                viewport={"width": width, "height": height},
                timeout=60_000,
            )
            context.set_default_timeout(20_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page: Any, name: str) -> None:
    """docs/console-<name>.png when `make screenshots` asks for them."""
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"console-{name}.png"))
