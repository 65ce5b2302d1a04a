"""Business metrics. The names are the same on every platform:

- on Lambda, CloudWatch embedded metric format through Powertools Metrics;
- elsewhere, in-process counters and latency summaries that the local platform and the
  Knative adapter expose for Prometheus.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any


class InProcessMetrics:
    """Counters and millisecond histograms kept in this process (thread-safe)."""

    BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, float] = defaultdict(float)
        self.histograms: dict[str, list[float]] = {}

    def incr(self, name: str, value: float = 1) -> None:
        with self._lock:
            self.counters[name] += value

    def observe_ms(self, name: str, milliseconds: float) -> None:
        with self._lock:
            # [count, sum, bucket counts...]
            h = self.histograms.setdefault(name, [0.0, 0.0] + [0.0] * len(self.BUCKETS_MS))
            h[0] += 1
            h[1] += milliseconds
            for i, bound in enumerate(self.BUCKETS_MS):
                if milliseconds <= bound:
                    h[2 + i] += 1

    def flush(self) -> None:
        """Nothing to send: the numbers are read where they are kept."""

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"counters": dict(self.counters), "histograms": dict(self.histograms)}


class EmfMetrics:
    """CloudWatch embedded metric format via Powertools, flushed after each invocation."""

    def __init__(self, namespace: str | None = None, service: str | None = None) -> None:
        from aws_lambda_powertools import Metrics

        self._metrics = Metrics(namespace=namespace, service=service)
        self._pending = False

    def incr(self, name: str, value: float = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        self._pending = True

    def observe_ms(self, name: str, milliseconds: float) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=milliseconds)
        self._pending = True

    def flush(self) -> None:
        """Emit what this invocation recorded; nothing (and no warning) when it recorded none."""
        if self._pending:
            self._pending = False
            self._metrics.flush_metrics(raise_on_empty_metrics=False)


# One registry per process, like a Prometheus client's: every function loaded into a local
# or Knative process counts into it, and /metrics reads it.
REGISTRY = InProcessMetrics()
