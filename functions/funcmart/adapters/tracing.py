"""Traces with OpenTelemetry, one way on every platform; nothing at all when tracing is off.

`FUNCMART_TRACING` (the template's TracingMode) decides, once per process at cold start:

- `off` (the default) or `xray`: this module never imports OpenTelemetry. Every helper below
  answers with a shared no-op in one global check, so a function pays nothing per request.
  (`xray` is the Powertools X-Ray Tracer, `funcmart.observability`, kept until X-Ray's SDK
  is retired.)
- `otlp`: OpenTelemetry's SDK. Where the host has already installed a tracer provider (the
  local platform's in-memory one, or a Lambda layer's wrapper such as ADOT's), spans go
  there; otherwise this module installs one that batches spans and POSTs them as OTLP/HTTP
  JSON (`OtlpJsonExporter`, the standard library's urllib: no protobuf and no requests at
  cold start) to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT +
  `/v1/traces`. The sampler is the SDK's from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
  (`parentbased_traceidratio` and `0.1` samples one order in ten, whole), the service name
  OTEL_SERVICE_NAME (default `funcmart`).

Context travels as W3C Trace Context: the `traceparent` (and `tracestate`) header of an HTTP
request, the message attributes of the same names on SQS, the CloudEvents distributed-tracing
extension `traceparent` through a Knative broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from funcmart.settings import SettingsError

log = logging.getLogger(__name__)

MODES = ("off", "otlp", "xray")
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
SCOPE = "funcmart"
# SpanKind by name (in SpanKind's order), resolved at the first span.
_KINDS = ("internal", "server", "client", "producer", "consumer")
_kinds: dict[str, Any] | None = None

_NULL: AbstractContextManager[None] = contextlib.nullcontext()
_tracer: Any = None  # the OpenTelemetry tracer where tracing is on, else None
_own_provider: Any = None  # the provider this module installed (to flush), if it did
_to_install: Mapping[str, str] | None = None  # the environment to install one from, at first use
_lock = threading.Lock()


def mode(environ: Mapping[str, str] | None = None) -> str:
    """The tracing mode named by FUNCMART_TRACING: off, otlp or xray (SettingsError else,
    at cold start)."""
    env = os.environ if environ is None else environ
    value = (env.get("FUNCMART_TRACING") or "off").strip().lower()
    if value not in MODES:
        raise SettingsError(f"FUNCMART_TRACING={value!r}: expected one of {', '.join(MODES)}")
    return value


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Turn OpenTelemetry on for this process if FUNCMART_TRACING is `otlp` (once; later calls
    only answer). Whether spans are recorded."""
    global _tracer, _to_install
    if _tracer is not None:
        return True
    if mode(environ) != "otlp":
        return False
    with _lock:
        if _tracer is None:
            from opentelemetry import trace

            if not _has_provider(trace.get_tracer_provider()):
                # Imported now (the cold start's), installed with the first span: a host that
                # forks after loading the function (gunicorn's workers) must not inherit the
                # provider's export thread, which a forked child cannot restart safely.
                import opentelemetry.sdk.trace.export  # noqa: F401

                _to_install = dict(os.environ if environ is None else environ)
            # A proxy until a provider is installed, then the provider's tracer.
            _tracer = trace.get_tracer(SCOPE)
    return True


def _ensure_provider() -> None:
    """Install this process's provider at its first span, where configure left it to us."""
    global _own_provider, _to_install, _tracer
    if _to_install is None:
        return
    with _lock:
        if _to_install is not None:
            _own_provider = _install_provider(_to_install)
            from opentelemetry import trace

            # The provider's tracer itself from now on, not the proxy that stood for it.
            _tracer = trace.get_tracer(SCOPE)
            _to_install = None


def _has_provider(provider: Any) -> bool:
    """Whether someone installed a real tracer provider (not the API's proxy or no-op)."""
    name = type(provider).__name__
    return name not in ("ProxyTracerProvider", "NoOpTracerProvider")


def _install_provider(env: Mapping[str, str]) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = env.get("OTEL_SERVICE_NAME") or "funcmart"
    attributes = {"service.name": service}
    function = env.get("AWS_LAMBDA_FUNCTION_NAME") or env.get("FUNCMART_FUNCTION")
    if function:
        attributes["faas.name"] = function
    # Resource(...) directly, not Resource.create: that one scans every installed package's
    # entry points for resource detectors, which a cold start should not pay for.
    provider = TracerProvider(resource=Resource(attributes))
    exporter: Any = OtlpJsonExporter.from_env(env)  # an SDK SpanExporter by its methods
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    kind: str = "internal",
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Any = None,
    links: Sequence[Any] = (),
) -> AbstractContextManager[Any]:
    """A span around a block, current inside it (the block gets the span, or None when
    tracing is off). `parent`: a context from `extract`, else the current one; `links`:
    span contexts (from `extract_span_context`) this work also belongs to."""
    if _tracer is None:
        return _NULL
    _ensure_provider()
    from opentelemetry.trace import Link

    return _tracer.start_as_current_span(  # type: ignore[no-any-return]
        name,
        context=parent,
        kind=_kind(kind),
        attributes=dict(attributes or {}),
        links=[Link(c) for c in links if c is not None],
    )


def producer_span(
    name: str, attributes: Mapping[str, Any] | None, continues: str = ""
) -> AbstractContextManager[Any]:
    """The span an event is published under: a child of the current span, or, where the
    event `continues` a trace of its own (a traceparent: an order re-published by the
    reconciler), a span in that trace, linked to the current one."""
    if _tracer is None:
        return _NULL
    parent = extract({TRACEPARENT: continues}) if continues else None
    links = [extract_span_context(inject())] if parent is not None else []
    return span(name, "producer", attributes, parent=parent, links=links)


def start_span(name: str, kind: str = "client", attributes: Mapping[str, Any] | None = None) -> Any:
    """A span started now, child of the current one and not made current (end it with
    `end_span`); None when tracing is off. For calls whose start and end are two hooks."""
    if _tracer is None:
        return None
    _ensure_provider()
    return _tracer.start_span(name, kind=_kind(kind), attributes=dict(attributes or {}))


def end_span(started: Any, error: BaseException | str | None = None, **attributes: Any) -> None:
    """End a span from `start_span`, marked failed when `error` says why."""
    if started is None:
        return
    for key, value in attributes.items():
        if value is not None:
            started.set_attribute(key.replace("__", "."), value)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        if isinstance(error, BaseException):
            started.record_exception(error)
        started.set_status(Status(StatusCode.ERROR, str(error)[:300]))
    started.end()


def recording(target: Any) -> bool:
    """Whether a span from `span` records (sampled): attributes for it are worth computing."""
    return target is not None and bool(target.is_recording())


def set_attributes(target: Any, **attributes: Any) -> None:
    """Attributes on a span from `span` (`http__route=...` is `http.route`); no-op on None."""
    if target is None:
        return
    for key, value in attributes.items():
        if value is not None:
            target.set_attribute(key.replace("__", "."), value)


def fail(target: Any, why: str) -> None:
    """Mark a span from `span` failed (a 5xx, a record that failed); no-op on None."""
    if target is None:
        return
    from opentelemetry.trace import Status, StatusCode

    target.set_status(Status(StatusCode.ERROR, why[:300]))


def _kind(kind: str) -> Any:
    global _kinds
    kinds = _kinds
    if kinds is None:  # built whole, then published: another thread sees all or nothing
        from opentelemetry.trace import SpanKind

        kinds = _kinds = dict(zip(_KINDS, SpanKind, strict=True))
    return kinds[kind]


# -- context in and out ------------------------------------------------------------------


def extract(carrier: Mapping[str, Any]) -> Any:
    """The context a W3C `traceparent` (and `tracestate`) in `carrier` names, for `parent=`;
    None when tracing is off or the carrier holds no valid one. Header names are matched
    without regard to case."""
    if _tracer is None:
        return None
    fields = _trace_fields(carrier)
    if TRACEPARENT not in fields:
        return None
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    ctx = TraceContextTextMapPropagator().extract(fields)
    return ctx if get_current_span(ctx).get_span_context().is_valid else None


def extract_span_context(carrier: Mapping[str, Any]) -> Any:
    """The span context in `carrier` (for a link), or None."""
    ctx = extract(carrier)
    if ctx is None:
        return None
    from opentelemetry.trace import get_current_span

    return get_current_span(ctx).get_span_context()


def inject() -> dict[str, str]:
    """The current span's context as W3C fields ({} when off or outside any span)."""
    if _tracer is None:
        return {}
    _ensure_provider()
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    out: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(out)
    return out


def _trace_fields(carrier: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in carrier.items():
        name = str(key).lower()
        if name in (TRACEPARENT, TRACESTATE) and isinstance(value, str) and len(value) <= 512:
            out[name] = value
    return out


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log lines; None when none."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span

    sc = get_current_span().get_span_context()
    if not sc.is_valid:
        return None
    return f"{sc.trace_id:032x}", f"{sc.span_id:016x}"


def trace_botocore(session: Any) -> None:
    """A client span around every AWS call made through clients of this botocore session
    (DynamoDB, SQS, Secrets Manager), from botocore's own events: no patching, and nothing
    registered where tracing is off. Call it before the session builds its first client."""
    if _tracer is None:
        return
    session.register("provide-client-params", _aws_target, unique_id="funcmart-trace-target")
    session.register("before-call", _aws_start, unique_id="funcmart-trace-start")
    session.register("after-call", _aws_end, unique_id="funcmart-trace-end")
    session.register("after-call-error", _aws_error, unique_id="funcmart-trace-error")


_AWS_SPAN = "funcmart_span"
_AWS_TARGET = "funcmart_target"


def _aws_target(params: Any = None, context: Any = None, **_: Any) -> None:
    if isinstance(params, dict) and isinstance(context, dict):
        context[_AWS_TARGET] = params.get("TableName") or params.get("QueueUrl")


def _aws_start(model: Any = None, context: Any = None, **_: Any) -> None:
    if model is None or not isinstance(context, dict):
        return
    service = str(model.service_model.service_id)
    attributes: dict[str, Any] = {
        "rpc.system": "aws-api",
        "rpc.service": service,
        "rpc.method": model.name,
    }
    target = context.get(_AWS_TARGET)
    if service == "DynamoDB":
        attributes["db.system.name"] = "aws.dynamodb"
        if isinstance(target, str):
            attributes["aws.dynamodb.table_names"] = [target]
    elif service == "SQS" and isinstance(target, str):
        attributes["messaging.system"] = "aws_sqs"
        attributes["messaging.destination.name"] = target.rsplit("/", 1)[-1]
    context[_AWS_SPAN] = start_span(f"{service}.{model.name}", "client", attributes)


def _aws_end(http_response: Any = None, parsed: Any = None, context: Any = None, **_: Any) -> None:
    started = context.pop(_AWS_SPAN, None) if isinstance(context, dict) else None
    if started is None:
        return
    status = getattr(http_response, "status_code", None)
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    code = error.get("Code") if isinstance(error, dict) else None
    metadata = parsed.get("ResponseMetadata") if isinstance(parsed, dict) else None
    end_span(
        started,
        f"{code or 'error'} ({status})" if isinstance(status, int) and status >= 400 else None,
        http__response__status_code=status,
        aws__request_id=metadata.get("RequestId") if isinstance(metadata, dict) else None,
    )


def _aws_error(exception: Any = None, context: Any = None, **_: Any) -> None:
    started = context.pop(_AWS_SPAN, None) if isinstance(context, dict) else None
    if started is not None:
        end_span(started, exception if isinstance(exception, BaseException) else "failed")


def flush(timeout_millis: int = 2000) -> None:
    """Send what the batch holds now: at the end of a Lambda invocation, before the
    environment is frozen. Only the provider this module installed; a host's flushes itself."""
    provider = _own_provider
    if provider is not None:
        provider.force_flush(timeout_millis)


# -- the exporter ------------------------------------------------------------------------


class OtlpJsonExporter:
    """A span exporter speaking OTLP/HTTP with JSON bodies (the OTLP specification's JSON
    encoding, which the OpenTelemetry Collector, Tempo, Jaeger and others take on
    `/v1/traces`). It duck-types the SDK's SpanExporter: export, shutdown, force_flush."""

    def __init__(
        self, endpoint: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        self.endpoint = endpoint
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.timeout = timeout

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OtlpJsonExporter:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not endpoint:
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
            endpoint = base.rstrip("/") + "/v1/traces"
        raw_headers = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get(
            "OTEL_EXPORTER_OTLP_HEADERS", ""
        )
        from urllib.parse import unquote

        headers = {}
        for pair in raw_headers.split(","):
            key, sep, value = pair.partition("=")
            if sep and key.strip():
                headers[unquote(key.strip())] = unquote(value.strip())
        timeout_ms = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get(
            "OTEL_EXPORTER_OTLP_TIMEOUT", "10000"
        )
        try:
            timeout = max(0.1, float(timeout_ms) / 1000)
        except ValueError:
            timeout = 10.0
        return cls(endpoint, headers, timeout)

    def export(self, spans: Sequence[Any]) -> Any:
        import urllib.request

        from opentelemetry.sdk.trace.export import SpanExportResult

        if not spans:
            return SpanExportResult.SUCCESS
        body = json.dumps(encode_spans(spans), separators=(",", ":")).encode()
        request = urllib.request.Request(self.endpoint, body, self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                ok = 200 <= int(answer.status) < 300
        except OSError as exc:  # URLError and HTTPError included
            log.warning("could not export %d spans to %s: %s", len(spans), self.endpoint, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: ARG002
        return True


def encode_spans(spans: Sequence[Any]) -> dict[str, Any]:
    """SDK spans as an OTLP ExportTraceServiceRequest in JSON: one resourceSpans entry per
    resource, one scopeSpans entry per instrumentation scope."""
    by_resource: dict[int, tuple[Any, dict[str, list[dict[str, Any]]]]] = {}
    for s in spans:
        _, scopes = by_resource.setdefault(id(s.resource), (s.resource, {}))
        scope = s.instrumentation_scope.name if s.instrumentation_scope else SCOPE
        scopes.setdefault(scope, []).append(encode_span(s))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes)},
                "scopeSpans": [
                    {"scope": {"name": name}, "spans": encoded} for name, encoded in scopes.items()
                ],
            }
            for resource, scopes in by_resource.values()
        ]
    }


def encode_span(s: Any) -> dict[str, Any]:
    ctx = s.context
    out: dict[str, Any] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "name": s.name,
        "kind": int(s.kind.value) + 1,  # OTLP counts from SPAN_KIND_UNSPECIFIED = 0
        "startTimeUnixNano": str(s.start_time or 0),
        "endTimeUnixNano": str(s.end_time or s.start_time or 0),
        "attributes": _attributes(s.attributes),
        "status": {"code": int(s.status.status_code.value)},
    }
    if ctx.trace_state:
        out["traceState"] = ctx.trace_state.to_header()
    if s.parent is not None:
        out["parentSpanId"] = f"{s.parent.span_id:016x}"
    if s.status.description:
        out["status"]["message"] = s.status.description
    if s.links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
            }
            for link in s.links
        ]
    if s.events:
        out["events"] = [
            {
                "name": e.name,
                "timeUnixNano": str(e.timestamp),
                "attributes": _attributes(e.attributes),
            }
            for e in s.events
        ]
    return out


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _any_value(v)} for k, v in (attributes or {}).items()]


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}
