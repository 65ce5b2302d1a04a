"""What a cold start imports on Lambda: only what the function uses. Each case is a fresh
interpreter with the Lambda runtime's variables, importing one handler module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
PROBE = """
import json, sys
module = __import__(sys.argv[1])
import botocore.client as _  # noqa: E401 - loaded now only to look at its patch
call = vars(sys.modules["botocore.client"].BaseClient)["_make_api_call"]
patched = type(call).__name__ == "FunctionWrapper"  # X-Ray patches with wrapt
print(json.dumps({"modules": sorted(sys.modules), "botocore_patched": patched}))
"""


def cold_start(module: str, **env: str) -> dict[str, object]:
    lambda_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": module,
        "LAMBDA_TASK_ROOT": str(FUNCTIONS),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "TABLE_NAME": "t",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "PAYMENT_PROVIDER": "simulator",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        **env,
    }
    # The probe imports botocore.client last, after the handler's own imports were listed.
    script = PROBE.replace(
        "import botocore.client as _",
        "loaded = sorted(sys.modules)\nimport botocore.client as _",
    ).replace('"modules": sorted(sys.modules)', '"modules": loaded')
    out = subprocess.run(
        [sys.executable, "-c", script, module],
        env=lambda_env,
        cwd=FUNCTIONS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_function_that_never_calls_aws_does_not_load_the_aws_sdk() -> None:
    modules = cold_start("clear_cart")["modules"]
    assert isinstance(modules, list)
    assert "botocore.client" not in modules
    assert "pynamodb" not in modules
    assert "aws_xray_sdk.core" in modules  # tracing on, as on Lambda


def test_a_function_that_calls_aws_has_its_sdk_traced_from_cold_start() -> None:
    result = cold_start("archive_product")
    assert "botocore.client" in result["modules"]  # type: ignore[operator]
    assert result["botocore_patched"] is True


@pytest.mark.parametrize("module", ["health", "get_product"])
def test_no_function_loads_boto3(module: str) -> None:
    assert "boto3" not in cold_start(module)["modules"]  # type: ignore[operator]


def test_tracing_turned_off_loads_no_xray_sdk() -> None:
    result = cold_start("archive_product", POWERTOOLS_TRACE_DISABLED="true")
    assert not any(m.startswith("aws_xray_sdk") for m in result["modules"])  # type: ignore[union-attr]
    assert result["botocore_patched"] is False


FREEZE_PROBE = """
import gc, json
from funcmart.observability import Observer
gc.unfreeze()
handler = Observer("http").wrap(lambda event, context: gc.get_freeze_count())
before = gc.get_freeze_count()
print(json.dumps([before, handler({}, None), handler({}, None)]))
"""


@pytest.mark.parametrize("lambda_runtime", [True, False])
def test_cold_start_objects_are_frozen_at_the_first_invocation_on_lambda(
    lambda_runtime: bool,
) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POWERTOOLS_TRACE_DISABLED": "1"}
    if lambda_runtime:
        env["AWS_LAMBDA_FUNCTION_NAME"] = "Probe"
    out = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE],
        env=env,
        cwd=FUNCTIONS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, first, second = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == 0
    if lambda_runtime:
        assert first > 0
        assert second > 0
    else:
        assert first == second == 0


# Modules only the OpenTelemetry SDK's tracing and W3C propagation bring (redis-py imports the
# SDK's metrics part by itself wherever the SDK is installed: that is why the SDK is kept
# out of the runtime's requirements, functions/requirements-tracing.txt).
OTEL_TRACING = ("opentelemetry.sdk.trace", "opentelemetry.trace.propagation.tracecontext")


@pytest.mark.parametrize("mode", ["off", "xray"])
def test_tracing_off_or_on_x_ray_imports_no_opentelemetry(mode: str) -> None:
    modules = cold_start("process_order", FUNCMART_TRACING=mode)["modules"]
    assert isinstance(modules, list)
    assert not [m for m in modules if m.startswith(OTEL_TRACING)]
    assert ("aws_xray_sdk.core" in modules) == (mode == "xray")


def test_tracing_with_opentelemetry_loads_its_sdk_and_no_x_ray() -> None:
    result = cold_start(
        "process_order", FUNCMART_TRACING="otlp", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"
    )
    modules = result["modules"]
    assert isinstance(modules, list)
    assert "opentelemetry.sdk.trace" in modules
    assert not [m for m in modules if m.startswith("aws_xray_sdk")]
    assert result["botocore_patched"] is False  # botocore's own events, no X-Ray patch


def test_an_unknown_tracing_mode_stops_the_cold_start() -> None:
    with pytest.raises(AssertionError, match="FUNCMART_TRACING='zipkin'"):
        cold_start("process_order", FUNCMART_TRACING="zipkin")
