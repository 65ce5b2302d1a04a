"""Business metrics. The names are the same on every platform:

- on Lambda, CloudWatch embedded metric format through Powertools Metrics;
- elsewhere, in-process counters and histograms that the Knative host (through
  prometheus_client) and the local gateway serve at /metrics in the Prometheus text format.

A metric is named once, in CamelCase, where the code counts it (`OrdersPlaced`,
`PaymentLatency`); `prometheus_name()` derives its Prometheus name mechanically
(`funcmart_orders_placed_total`, `funcmart_payment_latency_seconds`, in base units as
Prometheus wants), so dashboards and alert rules can be checked against the code.

Every business counter of `COUNTERS` is exported at 0 from the start: a counter that first
appears at 1 has no earlier sample, so `increase()` never sees it rise and the first dead
letter of a pod started from zero would never page.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

PREFIX = "funcmart"
log = logging.getLogger(__name__)
Labels = tuple[tuple[str, str], ...]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def prometheus_name(name: str, kind: str) -> str:
    """`OrdersPlaced`, "counter" -> `funcmart_orders_placed_total`; `PaymentLatency`,
    "histogram" -> `funcmart_payment_latency_seconds`."""
    suffix = {"counter": "_total", "histogram": "_seconds"}[kind]
    return f"{PREFIX}_{_snake(name)}{suffix}"


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _render(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = [*labels, extra] if extra else list(labels)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# The business counters, exported at 0 before anything happens (a test checks this list
# against every counter the code increments without labels).
COUNTERS = (
    "CacheHits",
    "CacheMisses",
    "CartClearFailures",
    # Dead letters HandleDeadLetters left alone: the order entered its state too recently for
    # any message to have exhausted its retries (a replay), or its payment is processing.
    "DeadLettersPaymentProcessing",
    "DeadLettersTooEarly",
    "DeadLettersUnactionable",
    "DeadLettersUnreadable",
    # Counted by the Knative host: CloudEvents refused for a missing or bad signature.
    "EventSignatureFailures",
    "OperatorCancels",
    "OperatorResolves",
    "OperatorRetries",
    "OrdersCancelled",
    "OrdersDeadLettered",
    "OrdersFailed",
    "OrdersFulfilled",
    "OrdersPaid",
    "OrdersPlaced",
    "OrdersRefunded",
    "PaymentMisconfigured",
    # Payments the provider is still settling, and abandoned orders' payments it could not
    # cancel yet (their event goes round again to refund a late capture).
    "PaymentsProcessing",
    "PaymentsUnsettled",
    "PermanentFailures",
    "PublishFailures",
    "RacedChargesRecorded",
    "RateLimitReplays",
    "RateLimited",
    "RateLimiterFailOpen",
    "ReconciledAbandoned",
    "ReconciledBacklogged",
    "ReconciledFlagged",
    "ReconciledRepublished",
    "RecordsNotStarted",
    "RedeliveriesSkipped",
)


class InProcessMetrics:
    """Counters and histograms (in seconds) kept in this process (thread-safe).

    Labels are optional and meant for the platform's own request metrics (route, status
    class); business metrics carry none, as on CloudWatch.
    """

    BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self, counters: tuple[str, ...] = COUNTERS) -> None:
        self._lock = threading.Lock()
        self._declared = counters
        self._counters: dict[str, dict[Labels, float]] = {}
        # name -> labels -> [count, sum, cumulative bucket counts...]
        self._histograms: dict[str, dict[Labels, list[float]]] = {}
        self._declare()

    def _declare(self) -> None:
        for name in self._declared:
            self._counters.setdefault(name, {}).setdefault((), 0.0)

    def incr(self, name: str, value: float = 1, labels: Mapping[str, str] | None = None) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def observe_ms(
        self, name: str, milliseconds: float, labels: Mapping[str, str] | None = None
    ) -> None:
        self._observe(name, milliseconds, _labels(labels))

    def observe_key(self, name: str, milliseconds: float, key: Labels) -> None:
        """`observe_ms` with the labels already in their key form (`label_key`): for a
        caller that records the same series on every request."""
        self._observe(name, milliseconds, key)

    def _observe(self, name: str, milliseconds: float, key: Labels) -> None:
        seconds = milliseconds / 1000
        first = bisect.bisect_left(self.BUCKETS_SECONDS, seconds)
        with self._lock:
            series = self._histograms.setdefault(name, {})
            h = series.get(key)
            if h is None:
                h = series[key] = [0.0, 0.0] + [0.0] * len(self.BUCKETS_SECONDS)
            h[0] += 1
            h[1] += seconds
            for i in range(2 + first, len(h)):
                h[i] += 1

    def incr_key(self, name: str, key: Labels, value: float = 1) -> None:
        """`incr` with the labels already in their key form (`label_key`)."""
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    @staticmethod
    def label_key(labels: Mapping[str, str] | None) -> Labels:
        """The key a series with these labels is kept under: computed once, reused."""
        return _labels(labels)

    def flush(self) -> None:
        """Nothing to send: the numbers are read where they are kept."""

    @property
    def counters(self) -> dict[str, float]:
        """Each counter summed over its labels."""
        with self._lock:
            return {name: sum(series.values()) for name, series in self._counters.items()}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counters": {n: sum(s.values()) for n, s in self._counters.items()},
                "histograms": {
                    n: {
                        "count": sum(h[0] for h in s.values()),
                        "sum": sum(h[1] for h in s.values()),
                    }
                    for n, s in self._histograms.items()
                },
            }

    def families(self) -> list[tuple[str, str, str, list[tuple[Labels, list[float]]]]]:
        """(kind, CamelCase name, Prometheus name, [(labels, values)]) per metric: counters'
        values are [total]; histograms' [count, sum, cumulative bucket counts...]."""
        with self._lock:
            out: list[tuple[str, str, str, list[tuple[Labels, list[float]]]]] = []
            for name in sorted(self._counters):
                series = [(k, [v]) for k, v in sorted(self._counters[name].items())]
                out.append(("counter", name, prometheus_name(name, "counter"), series))
            for name in sorted(self._histograms):
                hist = [(k, list(h)) for k, h in sorted(self._histograms[name].items())]
                out.append(("histogram", name, prometheus_name(name, "histogram"), hist))
            return out

    def prometheus_text(self) -> str:
        """Everything recorded, in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._counters):
                prom = prometheus_name(name, "counter")
                lines += [f"# HELP {prom} {name}", f"# TYPE {prom} counter"]
                for labels, value in sorted(self._counters[name].items()):
                    lines.append(f"{prom}{_render(labels)} {_number(value)}")
            for name in sorted(self._histograms):
                prom = prometheus_name(name, "histogram")
                lines += [f"# HELP {prom} {name} (seconds)", f"# TYPE {prom} histogram"]
                for labels, h in sorted(self._histograms[name].items()):
                    for i, bound in enumerate(self.BUCKETS_SECONDS):
                        le = ("le", str(bound))
                        lines.append(f"{prom}_bucket{_render(labels, le)} {_number(h[2 + i])}")
                    inf = ("le", "+Inf")
                    lines.append(f"{prom}_bucket{_render(labels, inf)} {_number(h[0])}")
                    lines.append(f"{prom}_sum{_render(labels)} {_number(h[1])}")
                    lines.append(f"{prom}_count{_render(labels)} {_number(h[0])}")
        return "\n".join(lines) + "\n" if lines else ""

    def reset(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._counters.clear()
            self._histograms.clear()
            self._declare()


PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EmfMetrics:
    """CloudWatch embedded metric format via Powertools, flushed after each invocation."""

    def __init__(self, namespace: str | None = None, service: str | None = None) -> None:
        import os

        from aws_lambda_powertools import Metrics

        namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or PREFIX
        self._metrics = Metrics(namespace=namespace, service=service)
        self._lock = threading.Lock()  # the records of a queue batch run concurrently

    def incr(self, name: str, value: float = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def observe_ms(self, name: str, milliseconds: float) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        with self._lock:
            self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)

    def flush(self) -> None:
        """Write this invocation's metrics; a metrics failure never fails the invocation."""
        try:
            with self._lock:
                self._metrics.flush_metrics(raise_on_empty_metrics=False)
        except Exception:
            log.exception("could not flush metrics")


# One registry per process, like a Prometheus client's: every function loaded into a local
# or Knative process counts into it, and /metrics reads it.
REGISTRY = InProcessMetrics()
