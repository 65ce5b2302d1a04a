"""Translate pynamodb and botocore failures into domain errors, in one place."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from funcmart.domain.errors import DependencyUnavailable

P = ParamSpec("P")
R = TypeVar("R")

_RETRYABLE = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
}


def error_code(exc: BaseException) -> str | None:
    """The DynamoDB error code behind a pynamodb or botocore exception, if any."""
    if isinstance(exc, PynamoDBException):
        code = exc.cause_response_code
        if code:
            return code
        exc = exc.cause or exc
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code"))
    return None


def is_store_fault(exc: BaseException) -> bool:
    """Whether `exc` is the store's fault, not the request's: it could not be reached or
    answered in time (any botocore failure that is not a service answer), it throttled, or
    it answered with an internal error (a 5xx). Such a failure is retried: 503 over HTTP,
    a redelivery on a queue."""
    if isinstance(exc, PynamoDBException):
        if error_code(exc) in _RETRYABLE:
            return True
        cause = exc.cause
        return cause is None or is_store_fault(cause)
    if isinstance(exc, BotoCoreError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return error_code(exc) in _RETRYABLE or (isinstance(status, int) and status >= 500)
    return False


def is_conditional_failure(exc: BaseException) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an unreachable or throttled table into DependencyUnavailable (503, or a retry)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (PynamoDBException, BotoCoreError, ClientError) as exc:
            if is_store_fault(exc) or error_code(exc) is None:
                code = error_code(exc)
                raise DependencyUnavailable(f"DynamoDB is unavailable ({code or exc})") from exc
            raise

    return wrapper
