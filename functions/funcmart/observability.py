"""Logs and traces, the same way on every platform.

- Logs: Powertools Logger, JSON lines with the correlation id (set per request or message by
  the platform modules), the function's name, the request id and whether this invocation was
  a cold start. The standard-library loggers of funcmart's own modules (services, adapters)
  write through the same JSON formatter.
- Traces: OpenTelemetry where FUNCMART_TRACING is `otlp` (`funcmart.adapters.tracing`: spans
  for requests, records, DynamoDB, Redis and payment calls; log lines then carry `trace_id`
  and `span_id`). The Powertools Tracer (X-Ray) where it is `xray`, or unset, on Lambda
  only, unless POWERTOOLS_TRACE_DISABLED says otherwise. Elsewhere no X-Ray tracer is built
  at all (nor the X-Ray SDK imported), so no X-Ray call is ever attempted locally or on
  Knative. botocore is patched for X-Ray when the function builds its first AWS client
  (`trace_aws_sdk`), so a function that never calls AWS (the cart functions) never imports
  botocore.
- Garbage collection: what a Lambda function builds at cold start lives as long as the
  process, so the collector is held off while it is built (funcmart/coldstart.py); at the
  first invocation (and, collected once, before a SnapStart snapshot) it is moved out of the
  collector's reach (`gc.freeze`) and the collector runs again: later full collections walk
  only what requests allocate.
- Metrics: `funcmart.adapters.metrics` (EMF on Lambda, Prometheus text elsewhere).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from funcmart import coldstart
from funcmart.adapters import tracing
from funcmart.coldstart import on_lambda

SERVICE = "funcmart"
TRACED_MODULES = ("botocore",)
logger = Logger(service=SERVICE)
_tracer: Any = None  # the process's Tracer, built by the first to need it
_sdk_patched = False
_tracer_lock = threading.Lock()

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


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether X-Ray traces are written: on Lambda where FUNCMART_TRACING is `xray` or unset,
    unless POWERTOOLS_TRACE_DISABLED is true."""
    env = os.environ if environ is None else environ
    disabled = env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower()
    wanted = (env.get("FUNCMART_TRACING") or "xray").strip().lower() == "xray"
    return wanted and on_lambda(env) and disabled not in ("1", "true", "yes", "on")


def tracer() -> Any:
    """The process's Powertools Tracer where traces are written, else None (and then neither
    the Tracer nor the X-Ray SDK is imported)."""
    global _tracer
    if _tracer is None and tracing_enabled():
        with _tracer_lock:
            if _tracer is None:
                from aws_lambda_powertools import Tracer

                # No module is patched here: patching all that X-Ray supports imports each
                # of those libraries; botocore is patched by trace_aws_sdk.
                _tracer = Tracer(service=SERVICE, auto_patch=False)
    return _tracer


def trace_aws_sdk() -> None:
    """Patch botocore for X-Ray (once per process) where traces are written: the composition
    root calls it before it builds an AWS client, so only functions that call AWS import
    botocore at cold start."""
    traced = tracer()
    if traced is None:
        return
    global _sdk_patched
    with _tracer_lock:
        if not _sdk_patched:
            traced.patch(modules=TRACED_MODULES)
            _sdk_patched = True


def freeze_init_objects() -> None:
    """Move everything allocated so far to the collector's permanent generation (Lambda only):
    modules, classes and clients built at cold start are never garbage, so no later full
    collection needs to walk them. O(1); what requests allocate is collected as usual, by
    the collector the cold start held off until now (funcmart/coldstart.py)."""
    coldstart.end()


def trace_in_logs() -> None:
    """Tag this thread's log lines with the current span's trace and span ids (OpenTelemetry
    on); without a current span, take them off."""
    ids = tracing.current_ids()
    if ids is not None:
        logger.thread_safe_append_keys(trace_id=ids[0], span_id=ids[1])
    elif tracing.enabled():
        logger.thread_safe_remove_keys(["trace_id", "span_id"])


def correlate(correlation_id: str | None) -> None:
    """Tag this thread's log lines with the correlation id of the work it is doing."""
    if correlation_id:
        logger.thread_safe_append_keys(correlation_id=correlation_id)
    else:
        logger.thread_safe_remove_keys(["correlation_id"])


class Observer:
    """Wraps one function's handler: cold-start flag and names in every log line, a trace
    segment on Lambda with X-Ray; with OpenTelemetry, the spans recorded are sent before the
    invocation ends on Lambda. One per handler, built at cold start."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._cold = True
        # At cold start, under the function's own environment (the local platform's too).
        self._otel = tracing.configure()
        self._flush = self._otel and on_lambda()
        self._tracer: Any = None if self._otel else tracer()
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
            if self._cold:
                self._cold = False
                freeze_init_objects()
            if not self._flush:
                return traced(event, context)
            try:
                return traced(event, context)
            finally:  # Lambda freezes the environment as soon as the handler returns
                tracing.flush()

        observed.__doc__ = handler.__doc__
        return observed
