"""Commands: what a caller asks the order use cases to do, one dataclass per use case.

A handler parses its event into one of these and hands it to one service function; the
service answers in domain terms and the handler chooses the status code.
"""

from __future__ import annotations

from dataclasses import dataclass

from funcmart.domain.identity import Principal


@dataclass(frozen=True)
class RetryOrder:
    """Send an order that needs attention back to the step that failed."""

    order_id: str
    operator: Principal
    reason: str
    correlation_id: str = ""


@dataclass(frozen=True)
class CancelStuckOrder:
    """Cancel an order that needs attention: stock back, the charge refunded if captured."""

    order_id: str
    operator: Principal
    reason: str


@dataclass(frozen=True)
class ResolveOrder:
    """Close an order that needs attention as fulfilled (handled outside the pipeline)."""

    order_id: str
    operator: Principal
    reason: str


@dataclass(frozen=True)
class ListOrdersByState:
    """Orders in one state, oldest change first (the longest waiting at the top)."""

    operator: Principal
    state: str
    limit: int = 50
    cursor: str | None = None
