"""Logs and traces, the same way on every platform.

- Logs: Powertools Logger, JSON lines with the correlation id (set per request or message by
  the platform modules), the function's name, the request id and whether this invocation was
  a cold start. The standard-library loggers of funcmart's own modules (services, adapters)
  write through the same JSON formatter.
- Traces: Powertools Tracer (X-Ray) on Lambda only. Elsewhere no tracer is built at all, so
  no X-Ray call is ever attempted locally or on Knative.
- Metrics: `funcmart.adapters.metrics` (EMF on Lambda, Prometheus text elsewhere).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from funcmart.settings import on_lambda

SERVICE = "funcmart"
TRACED_MODULES = ("botocore",)
logger = Logger(service=SERVICE)

R = TypeVar("R")
Handler = Callable[[dict[str, Any], Any], R]


def _share_json_formatting() -> None:
    names = {
        name
        for name in logging.root.manager.loggerDict
        if name.startswith(f"{SERVICE}.") and not name.startswith(f"{SERVICE}.platforms")
    }
    if names:
        copy_config_to_registered_loggers(source_logger=logger, include=names)


def correlate(correlation_id: str | None) -> None:
    """Tag this thread's log lines with the correlation id of the work it is doing."""
    if correlation_id:
        logger.thread_safe_append_keys(correlation_id=correlation_id)
    else:
        logger.thread_safe_remove_keys(["correlation_id"])


class Observer:
    """Wraps one function's handler: cold-start flag and names in every log line, a trace
    segment on Lambda. One per handler, built at cold start."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._cold = True
        self._tracer: Any = None
        if on_lambda():
            from aws_lambda_powertools import Tracer

            # botocore only: every DynamoDB and SQS call goes through it, and patching all
            # that X-Ray supports imports each of those libraries at cold start.
            self._tracer = Tracer(service=SERVICE, patch_modules=TRACED_MODULES)
        _share_json_formatting()

    def wrap(self, handler: Handler[R]) -> Handler[R]:
        traced = self._tracer.capture_lambda_handler(handler) if self._tracer else handler

        def observed(event: dict[str, Any], context: Any) -> R:
            name = getattr(context, "function_name", None) or os.environ.get("FUNCMART_FUNCTION")
            # Per-invocation keys are kept per thread: where one process serves several
            # functions at once (the local platform), each line names its own invocation.
            logger.thread_safe_clear_keys()
            logger.thread_safe_append_keys(
                cold_start=self._cold,
                function_name=name,
                function_request_id=getattr(context, "aws_request_id", None),
                trigger=self.kind,
            )
            self._cold = False
            return traced(event, context)

        observed.__doc__ = handler.__doc__
        return observed
