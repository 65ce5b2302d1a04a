"""Recent traces in memory, and a page that shows them: the local platform's trace viewer.

With traces on (`make dev` does), the platform installs OpenTelemetry's SDK tracer provider
before any function loads, with `TraceStore` as its exporter, and gives every function
FUNCMART_TRACING=otlp, so the functions' spans (`funcmart.adapters.tracing`) land here, in
this process, with no collector. Where OTEL_EXPORTER_OTLP_ENDPOINT (or the _TRACES_ one) is
set, the spans are also sent there (OTLP/HTTP JSON), for a Jaeger or Tempo you run yourself.

The gateway serves (see `TracePages`):
- GET /traces: the most recent traces, newest first, and a form to find an order's trace;
- GET /traces?order=<orderId>: the newest trace that touched that order (303 to it);
- GET /traces/<traceId>: the trace as a waterfall, one row per span;
- GET /traces/<traceId>.json: its spans as JSON.
"""

from __future__ import annotations

import html
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

from funcmart_hosts.gateway.events import HttpRequest, request_id
from funcmart_hosts.gateway.responses import HttpResponse, problem_response

MAX_TRACES = 500
MAX_SPANS_PER_TRACE = 2000
_KIND_NAMES = {0: "internal", 1: "server", 2: "client", 3: "producer", 4: "consumer"}


@dataclass
class SpanRecord:
    """One finished span, flattened for the page and JSON."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str  # "ok", "error" or "unset"
    status_message: str
    attributes: dict[str, Any]
    links: list[dict[str, str]] = field(default_factory=list)
    function: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def as_json(self) -> dict[str, Any]:
        return {
            "traceId": self.trace_id,
            "spanId": self.span_id,
            "parentSpanId": self.parent_id,
            "name": self.name,
            "kind": self.kind,
            "function": self.function,
            "startTimeUnixNano": self.start_ns,
            "endTimeUnixNano": self.end_ns,
            "durationMs": round(self.duration_ms, 3),
            "status": self.status,
            "statusMessage": self.status_message,
            "attributes": self.attributes,
            "links": self.links,
        }


def _record(span: Any) -> SpanRecord:
    ctx = span.context
    attributes = {str(k): _plain(v) for k, v in (span.attributes or {}).items()}
    code = int(span.status.status_code.value)
    return SpanRecord(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
        name=str(span.name),
        kind=_KIND_NAMES.get(int(span.kind.value), "internal"),
        start_ns=int(span.start_time or 0),
        end_ns=int(span.end_time or span.start_time or 0),
        status={0: "unset", 1: "ok", 2: "error"}.get(code, "unset"),
        status_message=str(span.status.description or ""),
        attributes=attributes,
        links=[
            {"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}"}
            for link in span.links or ()
        ],
        function=str(attributes.get("faas.name", "")),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class TraceStore:
    """The last MAX_TRACES traces, by trace id; an OpenTelemetry span exporter (export,
    shutdown, force_flush) safe to call from every thread."""

    def __init__(self, max_traces: int = MAX_TRACES) -> None:
        self.max_traces = max_traces
        self._traces: OrderedDict[str, list[SpanRecord]] = OrderedDict()
        self._lock = threading.Lock()

    # -- the exporter side ---------------------------------------------------------------
    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        records = [_record(s) for s in spans]
        with self._lock:
            for rec in records:
                kept = self._traces.setdefault(rec.trace_id, [])
                if len(kept) < MAX_SPANS_PER_TRACE:
                    kept.append(rec)
                self._traces.move_to_end(rec.trace_id)
            while len(self._traces) > self.max_traces:
                self._traces.popitem(last=False)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: ARG002
        return True

    # -- reading -------------------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            self._traces.clear()

    def trace_ids(self) -> list[str]:
        """Newest first (by the last span that arrived)."""
        with self._lock:
            return list(reversed(self._traces))

    def spans(self, trace_id: str) -> list[SpanRecord]:
        """The trace's spans by start time, each with the function it ran in (its own
        `faas.name`, else its nearest ancestor's)."""
        with self._lock:
            spans = list(self._traces.get(trace_id.lower(), ()))
        by_id = {s.span_id: s for s in spans}
        for s in spans:
            seen = set()
            parent = s
            while not s.function and parent.parent_id in by_id and parent.span_id not in seen:
                seen.add(parent.span_id)
                parent = by_id[str(parent.parent_id)]
                s.function = parent.function
        return sorted(spans, key=lambda s: (s.start_ns, s.end_ns))

    def for_order(self, order_id: str) -> list[str]:
        """Trace ids about this order: first those whose spans name it (`funcmart.order_id`:
        its life from placement on, oldest first), then the requests whose path names it
        (a GET of the order), newest first."""
        with self._lock:
            items = list(self._traces.items())
        named = [
            trace_id
            for trace_id, spans in items
            if any(s.attributes.get("funcmart.order_id") == order_id for s in spans)
        ]
        asked = [
            trace_id
            for trace_id, spans in reversed(items)
            if trace_id not in named
            and any(
                str(s.attributes.get("url.path", "")).split("/")[2:3] == [order_id] for s in spans
            )
        ]
        return named + asked


_installed: TraceStore | None = None
_install_lock = threading.Lock()


def install() -> TraceStore:
    """This process's trace store, installed (once) as OpenTelemetry's tracer provider's
    exporter; the OTLP endpoint from the environment as a second one, when set."""
    global _installed
    with _install_lock:
        if _installed is not None:
            return _installed
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        from funcmart.adapters.tracing import OtlpJsonExporter

        store = TraceStore()
        service = os.environ.get("OTEL_SERVICE_NAME") or "funcmart"
        provider = TracerProvider(resource=Resource({"service.name": service}))
        exporter: Any = store  # an SDK SpanExporter by its methods
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        ):
            exporter = OtlpJsonExporter.from_env(os.environ)
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _installed = store
        return store


# -- the pages -----------------------------------------------------------------------------

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2430; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #e3e6ea; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar-cell { width: 45%; position: relative; }
.bar { position: absolute; top: .35rem; height: .9rem; background: #4c78a8; border-radius: 2px;
       min-width: 2px; }
.bar.error { background: #d62728; }
.bar.client { background: #72b7b2; } .bar.producer { background: #b279a2; }
.bar.consumer { background: #f58518; }
.err { color: #d62728; font-weight: 600; }
code { font-size: 12px; }
form { margin: 1rem 0; }
"""


class TracePages:
    """GET /traces and below, from a TraceStore; None for every other request."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def serve(self, request: HttpRequest) -> HttpResponse | None:
        path = request.raw_path
        if path != "/traces" and not path.startswith("/traces/"):
            return None
        if request.method not in ("GET", "HEAD"):
            return problem_response(
                405,
                "Method not allowed",
                "the trace pages are read-only",
                request_id(),
                [("Allow", "GET, HEAD")],
            )
        if path == "/traces":
            order = (parse_qs(request.raw_query or "").get("order") or [""])[0].strip()
            if order:
                return self._order(order)
            return _html(self._index())
        name = path.removeprefix("/traces/")
        as_json = name.endswith(".json")
        trace_id = name.removesuffix(".json").lower()
        spans = self.store.spans(trace_id) if _is_trace_id(trace_id) else []
        if not spans:
            return problem_response(
                404, "Not found", f"no trace {name[:40]!r} is kept here", request_id()
            )
        if as_json:
            body = json.dumps({"traceId": trace_id, "spans": [s.as_json() for s in spans]})
            return HttpResponse(200, [("Content-Type", "application/json")], body.encode())
        return _html(_waterfall(trace_id, spans))

    def _order(self, order_id: str) -> HttpResponse:
        found = self.store.for_order(order_id)
        if not found:
            return problem_response(
                404,
                "Not found",
                f"no trace kept here touches order {order_id[:64]!r}",
                request_id(),
            )
        return HttpResponse(303, [("Location", f"/traces/{found[0]}")], b"")

    def _index(self) -> str:
        rows = []
        for trace_id in self.store.trace_ids()[:100]:
            spans = self.store.spans(trace_id)
            if not spans:
                continue
            root = next((s for s in spans if s.parent_id is None), spans[0])
            start = min(s.start_ns for s in spans)
            took = (max(s.end_ns for s in spans) - start) / 1e6
            functions = sorted({s.function for s in spans if s.function})
            errors = sum(1 for s in spans if s.status == "error")
            rows.append(
                f'<tr><td><a href="/traces/{trace_id}">{html.escape(root.name)}</a></td>'
                f"<td>{html.escape(', '.join(functions))}</td>"
                f'<td class="num">{len(spans)}</td>'
                f'<td class="num">{took:.1f} ms</td>'
                f'<td class="{"err" if errors else ""}">{errors or ""}</td>'
                f"<td><code>{trace_id}</code></td></tr>"
            )
        table = (
            "<table><thead><tr><th>first span</th><th>functions</th><th>spans</th>"
            "<th>duration</th><th>errors</th><th>trace id</th></tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
            if rows
            else "<p>No trace yet: call the API, and the traces of what it did show here.</p>"
        )
        form = (
            '<form action="/traces" method="get"><label>Order id '
            '<input name="order" id="order" size="40"></label> '
            '<button type="submit">Find its trace</button></form>'
        )
        return _page("Recent traces", f"<h1>Recent traces</h1>{form}{table}")


def _is_trace_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _depths(spans: list[SpanRecord]) -> dict[str, int]:
    by_id = {s.span_id: s for s in spans}
    depths: dict[str, int] = {}
    for s in spans:
        depth, cur, seen = 0, s, set()
        while cur.parent_id in by_id and cur.span_id not in seen:
            seen.add(cur.span_id)
            cur = by_id[str(cur.parent_id)]
            depth += 1
        depths[s.span_id] = depth
    return depths


def _ordered(spans: list[SpanRecord]) -> list[SpanRecord]:
    """Depth first: each span after its parent, siblings by start time."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else None, []).append(s)
    out: list[SpanRecord] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        s = stack.pop()
        out.append(s)
        stack.extend(reversed(children.get(s.span_id, [])))
    return out


def _waterfall(trace_id: str, spans: list[SpanRecord]) -> str:
    start = min(s.start_ns for s in spans)
    total = max(1, max(s.end_ns for s in spans) - start)
    depths = _depths(spans)
    rows = []
    for s in _ordered(spans):
        left = (s.start_ns - start) / total * 100
        width = max(0.2, (s.end_ns - s.start_ns) / total * 100)
        classes = "bar " + ("error" if s.status == "error" else s.kind)
        detail = ", ".join(f"{k}={v}" for k, v in s.attributes.items() if k not in ("faas.name",))
        if s.status_message:
            detail = f"{s.status_message}; {detail}"
        indent = depths[s.span_id] * 1.1
        rows.append(
            f'<tr class="span" data-span-id="{s.span_id}" data-name="{html.escape(s.name)}">'
            f'<td style="padding-left:{indent:.1f}rem" title="{html.escape(detail)}">'
            f'<span class="{"err" if s.status == "error" else ""}">{html.escape(s.name)}</span>'
            f"</td><td>{html.escape(s.function)}</td>"
            f'<td class="num">{s.duration_ms:.1f} ms</td>'
            f'<td class="bar-cell"><div class="{classes}" '
            f'style="left:{left:.2f}%;width:{min(width, 100 - left):.2f}%"></div></td></tr>'
        )
    took = total / 1e6
    body = (
        f'<p><a href="/traces">all traces</a></p><h1>Trace <code>{trace_id}</code></h1>'
        f"<p>{len(spans)} spans in {took:.1f} ms "
        f'(<a href="/traces/{trace_id}.json">JSON</a>)</p>'
        "<table><thead><tr><th>span</th><th>function</th><th>duration</th><th>timeline</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
    return _page(f"Trace {trace_id}", body)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        # no icon of its own: without this a browser asks for /favicon.ico and logs the 404
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _html(text: str) -> HttpResponse:
    return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], text.encode())


def order_trace_url(order_id: str) -> str:
    return f"/traces?order={quote(order_id)}"
