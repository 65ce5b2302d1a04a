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
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
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


def is_conditional_failure(exc: BaseException) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an unreachable or throttled table into DependencyUnavailable (503, or a retry)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (PynamoDBException, BotoCoreError, ClientError) as exc:
            code = error_code(exc)
            if code in _RETRYABLE or code is None:
                raise DependencyUnavailable(f"DynamoDB is unavailable ({code or exc})") from exc
            raise

    return wrapper
