"""The timer side: a scheduled event (EventBridge) runs one use case and logs its counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from funcmart.observability import Observer, correlate

if TYPE_CHECKING:
    from funcmart.bootstrap import Container

logger = Logger(service="funcmart")


class ScheduledFunction:
    def __init__(self, deps: Container, run: Callable[[], dict[str, int]]) -> None:
        self._deps = deps
        self._run = run
        self._observed = Observer("schedule").wrap(self._handle)

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, int]:
        """The Lambda handler: one scheduled event, the use case's counts back."""
        return self._observed(event, context)

    def _handle(self, event: dict[str, Any], _context: Any) -> dict[str, int]:
        event_id = event.get("id") if isinstance(event, dict) else None
        correlate(str(event_id) if event_id else None)
        try:
            counts = self._run()
            logger.info("scheduled run done", extra={"counts": counts})
            return counts
        finally:
            self._deps.metrics.flush()
