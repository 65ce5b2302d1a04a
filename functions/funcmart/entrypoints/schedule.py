"""The timer side: a scheduled event (EventBridge) runs one use case and logs its counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from funcmart.adapters import tracing
from funcmart.observability import Observer, correlate, trace_in_logs

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

    def _handle(self, event: dict[str, Any], context: Any) -> dict[str, int]:
        event_id = event.get("id") if isinstance(event, dict) else None
        correlate(str(event_id) if event_id else None)
        if not tracing.enabled():
            return self._counted()
        attributes = {
            "faas.trigger": "timer",
            "faas.name": str(getattr(context, "function_name", None) or ""),
        }
        with tracing.span("scheduled run", "internal", attributes) as span:
            trace_in_logs()
            counts = self._counted()
            tracing.set_attributes(
                span, **{f"funcmart__{name}": value for name, value in counts.items()}
            )
            return counts

    def _counted(self) -> dict[str, int]:
        try:
            counts = self._run()
            logger.info("scheduled run done", extra={"counts": counts})
            return counts
        finally:
            self._deps.metrics.flush()
