"""The system clock and id generator."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def epoch(self) -> float:
        return time.time()


class UuidGenerator:
    def new_id(self) -> str:
        return uuid.uuid4().hex
