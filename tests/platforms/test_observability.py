"""Metrics, logs and traces: one set of names on every platform, and the dashboard and alert
rules name only metrics the code emits (derived from the code itself, not a list)."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from funcmart.adapters.metrics import COUNTERS, InProcessMetrics, prometheus_name
from funcmart_hosts.gateway.template import ROOT

CODE = (ROOT / "functions", ROOT / "hosts")
METHODS = {
    "incr": "counter",
    "incr_key": "counter",
    "observe_ms": "histogram",
    "observe_key": "histogram",
}


def _module_dicts(tree: ast.Module) -> dict[str, list[str]]:
    """Module-level `NAME = {"k": "Literal", ...}`: the values, for name lookups."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            values = [v.value for v in node.value.values if isinstance(v, ast.Constant)]
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = [str(v) for v in values]
    return found


def _names(arg: ast.expr, dicts: dict[str, list[str]], where: str) -> set[str]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.IfExp):
        return _names(arg.body, dicts, where) | _names(arg.orelse, dicts, where)
    if isinstance(arg, ast.Subscript) and isinstance(arg.value, ast.Name) and arg.value.id in dicts:
        return set(dicts[arg.value.id])
    raise AssertionError(
        f"{where}: a metric name must be a literal the code states, not {ast.unparse(arg)}"
    )


def emitted_metrics() -> dict[str, str]:
    """Every metric the code counts or observes, as its Prometheus name -> kind."""
    found: dict[str, str] = {}
    for path in sorted(p for folder in CODE for p in folder.rglob("*.py")):
        tree = ast.parse(path.read_text())
        dicts = _module_dicts(tree)
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in METHODS
                and node.args
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            kind = METHODS[node.func.attr]
            for name in _names(node.args[0], dicts, where):
                found[prometheus_name(name, kind)] = kind
    return found


EMITTED = emitted_metrics()


def series_named(expression: str) -> set[str]:
    """The funcmart metric families a PromQL expression reads."""
    names = set(re.findall(r"\bfuncmart_[a-z0-9_]+", expression))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def dashboard_expressions() -> list[str]:
    dash = json.loads((ROOT / "infra/grafana/funcmart.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "infra/prometheus/alerts.yaml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_the_code_emits_the_business_metrics() -> None:
    for name in (
        "funcmart_orders_placed_total",
        "funcmart_orders_paid_total",
        "funcmart_orders_dead_lettered_total",
        "funcmart_cache_hits_total",
        "funcmart_cache_misses_total",
        "funcmart_reconciled_republished_total",
        "funcmart_http_requests_total",
    ):
        assert EMITTED.get(name) == "counter", name
    assert EMITTED["funcmart_payment_latency_seconds"] == "histogram"
    assert EMITTED["funcmart_http_latency_seconds"] == "histogram"


@pytest.mark.parametrize(
    ("source", "expressions"),
    [("dashboard", dashboard_expressions()), ("alerts", alert_expressions())],
)
def test_every_metric_named_is_one_the_code_emits(source: str, expressions: list[str]) -> None:
    assert expressions, f"the {source} has no expressions"
    named = set().union(*(series_named(e) for e in expressions))
    assert named, f"the {source} names no funcmart metric"
    assert named <= set(EMITTED), f"{source} names metrics nobody emits: {named - set(EMITTED)}"
    for expression in expressions:
        for suffix_use in re.findall(r"\bfuncmart_[a-z0-9_]+_(?:bucket|sum|count)\b", expression):
            family = re.sub(r"_(bucket|sum|count)$", "", suffix_use)
            assert EMITTED[family] == "histogram", f"{suffix_use}: only histograms have buckets"


def test_the_dashboard_shows_the_rate_limiter() -> None:
    expressions = " ".join(dashboard_expressions())
    assert "funcmart_rate_limited_total" in expressions
    assert "funcmart_rate_limiter_fail_open_total" in expressions


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs Debian's prometheus"
    return found


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    """Including: the first dead letter in a pod started from zero pages."""
    rules = ROOT / "infra/prometheus"
    checked = subprocess.run(
        [promtool(), "check", "rules", str(rules / "alerts.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yaml"],
        cwd=rules,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_promtool_refuses_a_rule_file_that_is_wrong(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "alerts.yaml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum(\n")
    checked = subprocess.run(
        [promtool(), "check", "rules", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode != 0


def test_the_alerts_cover_dead_letters_errors_and_latency() -> None:
    expressions = " ".join(alert_expressions())
    assert "funcmart_orders_dead_lettered_total" in expressions
    assert 'code=~"5.."' in expressions
    assert "histogram_quantile(0.99" in expressions


# ------------------------------------------------------------------ Prometheus text


def test_prometheus_text_has_counters_and_cumulative_histograms() -> None:
    m = InProcessMetrics()
    m.incr("OrdersPlaced")
    m.incr("OrdersPlaced", 2)
    m.incr("HttpRequests", labels={"route": "GET /x", "code": "200"})
    for ms in (3, 40, 40, 20000):
        m.observe_ms("PaymentLatency", ms)
    lines = m.prometheus_text().splitlines()
    assert "# TYPE funcmart_orders_placed_total counter" in lines
    assert "funcmart_orders_placed_total 3" in lines
    assert 'funcmart_http_requests_total{code="200",route="GET /x"} 1' in lines
    assert "# TYPE funcmart_payment_latency_seconds histogram" in lines
    assert 'funcmart_payment_latency_seconds_bucket{le="0.005"} 1' in lines
    assert 'funcmart_payment_latency_seconds_bucket{le="0.05"} 3' in lines
    assert 'funcmart_payment_latency_seconds_bucket{le="10.0"} 3' in lines
    assert 'funcmart_payment_latency_seconds_bucket{le="+Inf"} 4' in lines
    assert "funcmart_payment_latency_seconds_sum 20.083" in lines
    assert "funcmart_payment_latency_seconds_count 4" in lines


def test_label_values_are_escaped() -> None:
    m = InProcessMetrics()
    m.incr("HttpRequests", labels={"route": 'a"b\\c'})
    assert 'funcmart_http_requests_total{route="a\\"b\\\\c"} 1' in m.prometheus_text()


def test_nothing_recorded_is_an_empty_exposition() -> None:
    assert InProcessMetrics(counters=()).prometheus_text() == ""


def test_every_business_counter_is_exported_at_zero_from_the_start() -> None:
    """A counter first seen at 1 never makes increase() rise: the first dead letter of a pod
    started from zero would not page (infra/prometheus/alerts.test.yaml shows both cases)."""
    lines = InProcessMetrics().prometheus_text().splitlines()
    for name in COUNTERS:
        assert f"{prometheus_name(name, 'counter')} 0" in lines, name
    fresh = InProcessMetrics()
    fresh.incr("OrdersDeadLettered")
    fresh.reset()
    assert "funcmart_orders_dead_lettered_total 0" in fresh.prometheus_text().splitlines()


def test_the_counters_exported_at_zero_are_the_unlabelled_ones_the_code_counts() -> None:
    unlabelled = {n for n, kind in EMITTED.items() if kind == "counter"} - {
        "funcmart_http_requests_total"  # labelled by route and status: created per request
    }
    assert {prometheus_name(n, "counter") for n in COUNTERS} == unlabelled


def test_prometheus_names_follow_one_rule() -> None:
    assert prometheus_name("OrdersDeadLettered", "counter") == "funcmart_orders_dead_lettered_total"
    assert prometheus_name("HttpLatency", "histogram") == "funcmart_http_latency_seconds"


# ---------------------------------------------------------------------------- logs


def test_logs_are_json_with_cold_start_function_and_correlation_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from funcmart.bootstrap import build
    from funcmart.entrypoints.http import HttpFunction, json_response, logger
    from funcmart.settings import Settings
    from funcmart_hosts.gateway.context import LambdaContext
    from funcmart_hosts.gateway.events import HttpRequest, http_event
    from tests.fakes import FakeMetrics

    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    app = HttpFunction(build(Settings.load({}, table_name="t"), metrics=FakeMetrics()))
    # Read what the Powertools handler writes, through its own JSON formatter.
    out = io.StringIO()
    capture = logging.StreamHandler(out)
    capture.setFormatter(logger.registered_formatter)
    logger.addHandler(capture)

    @app.get("/ping")
    def ping() -> Any:
        logger.info("pinged")
        return json_response({"ok": True})

    def call() -> dict[str, Any]:
        request = HttpRequest("GET", "/ping", [("X-Correlation-Id", "corr-42")])
        event = http_event(request, "GET /ping")
        return app.handler(event, LambdaContext("Ping", 128, 3, "arn:x"))

    try:
        assert call()["statusCode"] == 200
        assert call()["statusCode"] == 200
    finally:
        logger.removeHandler(capture)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if "pinged" in line]
    assert [line["cold_start"] for line in lines] == [True, False]
    assert all(line["correlation_id"] == "corr-42" for line in lines)
    assert all(line["function_name"] == "Ping" for line in lines)
    assert all(line["service"] == "funcmart" for line in lines)


def test_no_tracer_outside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    from funcmart.observability import Observer

    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    assert Observer("http")._tracer is None
