"""Lines a test wants in the session's closing summary (see tests/conftest.py)."""

from __future__ import annotations

LINES: dict[str, str] = {}


def add(name: str, line: str) -> None:
    LINES[name] = line
