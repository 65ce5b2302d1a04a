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
        "FUNCMART_ALLOW_SIMULATOR": "yes-orders-are-not-paid-for",  # on "Lambda"
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


# What no function uses, and so never loads at cold start: the asyncio, cluster and sentinel
# Redis clients that `redis/__init__` imports, the resolvers and event classes Powertools'
# `event_handler/__init__` imports besides API Gateway's, and the event sources its
# `data_classes/__init__` imports that no function takes.
NEVER_AT_COLD_START = (
    "redis.asyncio.client",
    "redis.asyncio.cluster",
    "redis.asyncio.connection",
    "redis.cluster",
    "redis.sentinel",
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.event_handler.events_appsync",
    "aws_lambda_powertools.event_handler.graphql_appsync",
    "aws_lambda_powertools.event_handler.bedrock_agent",
    "aws_lambda_powertools.event_handler.bedrock_agent_function",
    "aws_lambda_powertools.event_handler.vpc_lattice",
    "aws_lambda_powertools.event_handler.lambda_function_url",
    "aws_lambda_powertools.event_handler.http_resolver",
    "aws_lambda_powertools.utilities.data_classes.appsync_resolver_event",
    "aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event",
    "aws_lambda_powertools.utilities.data_classes.connect_contact_flow_event",
    "aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event",
    "aws_lambda_powertools.utilities.data_classes.transfer_family_event",
)


@pytest.mark.parametrize(
    "module", ["place_order", "get_product", "put_cart_item", "process_order", "reconcile_orders"]
)
def test_a_cold_start_loads_no_client_or_resolver_the_function_does_not_use(module: str) -> None:
    modules = cold_start(module)["modules"]
    assert isinstance(modules, list)
    loaded = [m for m in modules if m.startswith(NEVER_AT_COLD_START)]
    assert loaded == []


@pytest.mark.parametrize("module", ["place_order", "get_cart", "retry_order"])
def test_a_function_builds_no_schema_of_another_resource(module: str) -> None:
    # pydantic builds a model's validator when its class is defined: the order, cart and
    # operations functions import the schemas they share from funcmart.api.common.
    assert "funcmart.api.catalog" not in cold_start(module)["modules"]  # type: ignore[operator]


@pytest.mark.parametrize(
    "module", ["process_order", "fulfil_order", "handle_dead_letters", "reconcile_orders"]
)
def test_a_queue_or_scheduled_function_loads_no_validation_library(module: str) -> None:
    # Settings are a plain dataclass: pydantic is for the HTTP functions' request schemas,
    # and with it absent Powertools' batch module loads none of its parser's event models.
    modules = cold_start(module)["modules"]
    assert isinstance(modules, list)
    assert [
        m for m in modules if m.startswith(("pydantic", "aws_lambda_powertools.utilities.parser"))
    ] == []


@pytest.mark.parametrize("module", ["fulfil_order", "process_order"])
def test_an_order_consumer_loads_no_redis_client_at_cold_start(module: str) -> None:
    # The product cache is looked up when an order first changes stock (a payment declined,
    # a cancellation): shipping an order or taking its payment never needs Redis.
    assert "redis.client" not in cold_start(module)["modules"]  # type: ignore[operator]


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
held = not gc.isenabled()
gc.unfreeze()
handler = Observer("http").wrap(lambda event, context: [gc.get_freeze_count(), gc.isenabled()])
before = gc.get_freeze_count()
print(json.dumps([held, before, handler({}, None), handler({}, None)]))
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
    held, before, first, second = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == 0
    if lambda_runtime:
        # The collector is held off while the cold start builds, and runs from the first
        # invocation on, over what requests allocate.
        assert held is True
        assert first[0] > 0
        assert second[0] > 0
        assert first[1] is second[1] is True
    else:
        # A host serving for hours keeps its collector throughout.
        assert held is False
        assert first == second == [0, True]


DEFERRED_PROBE = """
import json, sys
import funcmart
from funcmart.imports import EXPORTS
import redis, aws_lambda_powertools.event_handler as eh
import aws_lambda_powertools.utilities.data_classes as dc
looked_up = {p: {n: getattr(sys.modules[p], n) for n in names} for p, names in EXPORTS.items()}
unused = (
    "redis.sentinel",
    "aws_lambda_powertools.event_handler.appsync",
    "aws_lambda_powertools.utilities.data_classes.kafka_event",
)
before = any(m in sys.modules for m in unused)
# Names no map holds run the package's __init__: everything a plain import defines is there.
from redis.asyncio import Redis as AsyncRedis
sentinel, appsync, kafka = redis.Sentinel, eh.AppSyncResolver, dc.KafkaEvent
same = all(getattr(sys.modules[p], n) is v for p, d in looked_up.items() for n, v in d.items())
print(json.dumps({
    "before": before,
    "same": same,
    "async": AsyncRedis.__module__,
    "names": sorted(n for n in dir(redis) if not n.startswith("_")),
    "resolvers": sorted(n for n in dir(eh) if not n.startswith("_")),
    "events": sorted(n for n in dir(dc) if not n.startswith("_")),
}))
"""
PLAIN_PROBE = """
import json
import redis, aws_lambda_powertools.event_handler as eh
import aws_lambda_powertools.utilities.data_classes as dc
print(json.dumps({
    "names": sorted(n for n in dir(redis) if not n.startswith("_")),
    "resolvers": sorted(n for n in dir(eh) if not n.startswith("_")),
    "events": sorted(n for n in dir(dc) if not n.startswith("_")),
}))
"""


def _probe(script: str) -> dict[str, object]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "POWERTOOLS_TRACE_DISABLED": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=FUNCTIONS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_deferred_package_gives_what_a_plain_import_gives() -> None:
    deferred, plain = _probe(DEFERRED_PROBE), _probe(PLAIN_PROBE)
    # The names the functions read come from their submodules, without the __init__ ...
    assert deferred["before"] is False
    # ... and are the very objects the __init__ exports once it has run.
    assert deferred["same"] is True
    assert deferred["async"] == "redis.asyncio.client"
    assert set(plain["names"]) <= set(deferred["names"])  # type: ignore[arg-type]
    assert set(plain["resolvers"]) <= set(deferred["resolvers"])  # type: ignore[arg-type]
    assert set(plain["events"]) <= set(deferred["events"])  # type: ignore[arg-type]


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
