"""Domain errors. Each transport maps them once: HTTP to problem+json, queues to retries."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the domain and services raise on purpose."""

    title = "Request failed"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidRequest(DomainError):
    title = "Invalid request"


class Unauthorized(DomainError):
    title = "Authentication required"


class Forbidden(DomainError):
    title = "Forbidden"


class NotFound(DomainError):
    title = "Not found"


class Conflict(DomainError):
    title = "Conflict"


class VersionConflict(Conflict):
    title = "Version conflict"


class OutOfStock(Conflict):
    title = "Insufficient stock"


class IdempotencyKeyReused(DomainError):
    title = "Idempotency key reused with a different request"


class DependencyUnavailable(DomainError):
    """A store or service we depend on did not answer; the caller may retry later."""

    title = "Service temporarily unavailable"

    def __init__(self, detail: str, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class TransientFailure(DomainError):
    """A failure worth retrying (a queue consumer lets the message be redelivered)."""

    title = "Transient failure"
