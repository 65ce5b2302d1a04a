"""template.yaml: handlers exist and import, least-privilege policies, no Scan, lint-clean."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.loader import load_handler
from funcmart_hosts.gateway.template import ROOT, Function, Template
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.resources import Deployment, QueueRef

TPL = template.load()
FUNCTIONS = sorted(TPL.functions)


def module_path(fn: Function) -> Path:
    return ROOT / fn.code_uri / (fn.module.replace(".", "/") + ".py")


def statements(tpl: Template, logical_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in tpl.resource(logical_id)["Properties"].get("Policies") or []:
        assert isinstance(policy, dict), f"{logical_id}: policies are inline statements"
        assert "Statement" in policy, f"{logical_id}: not a shared managed policy"
        found.extend(policy["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def layer_names(layer: Any) -> list[str]:
    """The layers an entry of Layers may name: `!Ref Layer`, or either branch of an `!If`
    (AWS::NoValue names none)."""
    if layer is None:
        return []
    if getattr(layer, "name", None) == "If":
        return [n for branch in layer.value[1:] for n in layer_names(branch)]
    name = str(getattr(layer, "value", layer))
    return [] if name == "AWS::NoValue" else [name]


def test_the_template_declares_functions() -> None:
    assert FUNCTIONS


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_the_handler_module_exists_and_imports(logical_id: str) -> None:
    fn = TPL.functions[logical_id]
    assert module_path(fn).is_file(), f"{fn.handler}: no {module_path(fn)}"
    deployment = Deployment(TPL, LocalSettings.load({}), "redis://127.0.0.1:1/0", None, None)
    deployment.queues = {
        lid: QueueRef(
            lid, name, f"http://127.0.0.1:1/123456789012/{name}", deployment.arn("sqs", name)
        )
        for lid in TPL.queues
        for name in [deployment.name(lid)]
    }
    handler = load_handler(fn, deployment.function_env(fn))
    assert callable(handler)


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_the_handler_module_docstring_names_its_trigger(logical_id: str) -> None:
    fn = TPL.functions[logical_id]
    doc = ast.get_docstring(ast.parse(module_path(fn).read_text())) or ""
    triggers = [f"{r.method} {r.path}" for r in fn.routes]
    if fn.queues:
        triggers.append("SQS ")
    if fn.schedules:
        triggers.append("Schedule")
    assert triggers, logical_id
    assert any(doc.startswith(t) for t in triggers), (logical_id, doc[:60])


def test_no_shared_role_or_global_policy() -> None:
    glob = (TPL.raw.get("Globals") or {}).get("Function") or {}
    assert "Policies" not in glob
    assert "Role" not in glob


# Functions that touch only Redis need no AWS permission at all, so they are granted none.
NO_AWS_ACCESS = {"RemoveCartItem", "ClearCart"}


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_each_function_has_its_own_scoped_policy(logical_id: str) -> None:
    props = TPL.resource(logical_id)["Properties"]
    assert "Role" not in props, "a shared role would give every function every permission"
    found = statements(TPL, logical_id)
    if logical_id in NO_AWS_ACCESS:
        assert "Policies" not in props, f"{logical_id} needs no AWS permission"
        return
    assert found, f"{logical_id} has no policy of its own"
    for st in found:
        assert st["Effect"] == "Allow"
        assert "*" not in as_list(st["Resource"]), f"{logical_id}: unscoped resource"


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_no_policy_allows_a_scan(logical_id: str) -> None:
    for st in statements(TPL, logical_id):
        for action in as_list(st["Action"]):
            assert not fnmatch.fnmatchcase("dynamodb:Scan", action), (logical_id, action)


def test_no_code_scans_a_table() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "functions").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.scan\(", line)
    ]
    assert offenders == []


def test_cfn_lint_is_silent() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run(
        [str(cfn_lint), str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# ------------------------------------------------------------ dead-lettering at once


def _send_message_resources(logical_id: str) -> set[str]:
    """The queues (logical ids) the function's own policy lets it send to."""
    out: set[str] = set()
    for policy in TPL.resource(logical_id)["Properties"].get("Policies", []):
        for st in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st.get("Effect") != "Allow" or not any(
                fnmatch.fnmatchcase("sqs:SendMessage", a) for a in actions
            ):
                continue
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for r in resources:
                out.add(_target(r))
    return out


def _target(value: Any) -> str:
    """`!GetAtt Queue.Arn` or `!Ref Queue` -> "Queue"."""
    inner = getattr(value, "value", value)
    text = inner if isinstance(inner, str) else ".".join(inner)
    return str(text).split(".")[0]


@pytest.mark.parametrize("fn", sorted(f for f, v in TPL.functions.items() if v.queues))
def test_a_consumer_dead_letters_to_its_own_queues_dlq_and_may_send_there(fn: str) -> None:
    """DEAD_LETTER_QUEUE_URL names the dead-letter queue of the queue the function consumes,
    and the function's own policy allows sqs:SendMessage on it; a consumer of a queue with a
    dead-letter queue has the variable (HandleDeadLetters consumes dead-letter queues, which
    have none)."""
    function = TPL.functions[fn]
    targets = {
        TPL.queues[src.queue].dead_letter_target
        for src in function.queues
        if TPL.queues[src.queue].dead_letter_target
    }
    value = function.environment.get("DEAD_LETTER_QUEUE_URL")
    if not targets:
        assert value is None, f"{fn}: its queue has no dead-letter queue to name"
        return
    assert len(targets) == 1, f"{fn}: one dead-letter queue per consumer"
    (dlq,) = targets
    assert value is not None, f"{fn}: DEAD_LETTER_QUEUE_URL: !Ref {dlq} is missing"
    assert getattr(value, "name", None) == "Ref", value
    assert _target(value) == dlq, value
    assert dlq in _send_message_resources(fn), f"{fn}: its policy must allow sending to {dlq}"


# ------------------------------------------------------------------------- SnapStart


def _setting(logical_id: str, name: str) -> Any:
    """A function's property, or the Globals' when the function does not set it."""
    props = TPL.resource(logical_id)["Properties"]
    return props.get(name, TPL.raw["Globals"]["Function"].get(name))


def test_snapstart_is_on_by_default_and_can_be_turned_off() -> None:
    param = TPL.raw["Parameters"]["SnapStart"]
    assert param["Default"] == "PublishedVersions"
    assert set(param["AllowedValues"]) == {"PublishedVersions", "None"}


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_snapstart_applies_to_the_versions_the_events_invoke(logical_id: str) -> None:
    snapstart = _setting(logical_id, "SnapStart")
    assert getattr(snapstart["ApplyOn"], "value", None) == "SnapStart"  # !Ref SnapStart
    # SnapStart snapshots published versions only: every deployment publishes one, behind
    # an alias that SAM points the function's events at.
    assert _setting(logical_id, "AutoPublishAlias")
    runtime = _setting(logical_id, "Runtime")
    assert re.fullmatch(r"python3\.(\d+)", runtime)
    assert int(runtime.split(".")[1]) >= 12  # SnapStart: Python 3.12 and later
    # Not compatible with SnapStart: provisioned concurrency, EFS, more than 512 MB of /tmp.
    props = TPL.resource(logical_id)["Properties"]
    assert "ProvisionedConcurrencyConfig" not in props
    assert "FileSystemConfigs" not in props
    assert (_setting(logical_id, "EphemeralStorage") or {}).get("Size", 512) <= 512


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_every_layer_a_function_uses_is_built_for_its_runtime(logical_id: str) -> None:
    runtime = _setting(logical_id, "Runtime")
    # SAM appends a function's own layers to the Globals' ones.
    layers = as_list(TPL.raw["Globals"]["Function"].get("Layers")) + as_list(
        TPL.resource(logical_id)["Properties"].get("Layers")
    )
    names = {name for layer in layers for name in layer_names(layer)}
    assert names
    for name in names:
        assert runtime in TPL.resource(name)["Properties"]["CompatibleRuntimes"], name


CONSOLE_RESOURCES = (
    "ConsoleBucket",
    "ConsoleOriginAccess",
    "ConsoleHeaders",
    "ConsoleDistribution",
    "ConsoleIndex",
    "ConsoleBucketPolicy",
)


def test_the_console_hosting_is_off_by_default_and_each_of_its_resources_waits_for_it() -> None:
    param = TPL.raw["Parameters"]["ConsoleHosting"]
    assert param["Default"] == "None"
    assert set(param["AllowedValues"]) == {"None", "CloudFront"}
    console = [lid for lid in TPL.raw["Resources"] if lid.startswith("Console")]
    assert sorted(console) == sorted(CONSOLE_RESOURCES)
    for lid in console:
        assert TPL.resource(lid).get("Condition") == "HostConsole", lid
    for name, output in TPL.raw["Outputs"].items():
        if name.startswith("Console"):
            assert output.get("Condition") == "HostConsole", name


def test_the_console_bucket_is_private_and_read_by_its_distribution_only() -> None:
    props = TPL.resource("ConsoleBucket")["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    (statement,) = TPL.resource("ConsoleBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Action"] == "s3:GetObject"
    assert (
        "distribution/${ConsoleDistribution}"
        in statement["Condition"]["StringEquals"]["AWS:SourceArn"].value
    )


def test_cloudfront_sends_the_console_the_policy_the_local_platform_sends() -> None:
    from funcmart_hosts.local.console import csp

    headers = TPL.resource("ConsoleHeaders")["Properties"]["ResponseHeadersPolicyConfig"]
    policy = headers["SecurityHeadersConfig"]["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    api = "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com"
    deployed = re.sub(r"\s+;", ";", " ".join(policy.value.split()))
    assert deployed == csp((api, "${ConsoleConnectOrigins}"))


# --------------------------------------------------------- Redis in a private network


def _tag(value: Any) -> tuple[str, Any]:
    return (value.name, value.value)


def test_the_redis_url_is_no_echo_or_read_from_secrets_manager() -> None:
    params = TPL.raw["Parameters"]
    assert params["RedisUrl"]["NoEcho"] is True
    assert params["RedisUrlSecretId"]["Default"] == ""
    env = TPL.raw["Globals"]["Function"]["Environment"]["Variables"]
    assert _tag(env["REDIS_URL_SECRET_ID"]) == ("Ref", "RedisUrlSecretId")
    from funcmart.settings import Settings

    assert Settings.env_names("redis_url_secret_id") == ("REDIS_URL_SECRET_ID",)


def test_every_function_that_uses_redis_may_read_the_redis_url_secret() -> None:
    from tools import function_needs

    users = {lid for lid, f in TPL.functions.items() if function_needs.uses_redis(TPL, f)}
    policy = TPL.resource("RedisUrlSecretRead")
    assert policy["Condition"] == "RedisUrlFromSecret"
    roles = {_tag(r)[1] for r in policy["Properties"]["Roles"]}
    assert roles == {f"{lid}Role" for lid in users}  # SAM names each function's role so
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert "${RedisUrlSecretId}-*" in _tag(statement["Resource"])[1]


def test_the_functions_that_use_redis_run_in_its_vpc_when_one_is_given() -> None:
    from tools import function_needs

    # Set once in Globals, which holds only while every function uses Redis; a function
    # that does not would need its own VpcConfig (and the Globals' removed).
    assert all(function_needs.uses_redis(TPL, f) for f in TPL.functions.values())
    vpc = TPL.raw["Globals"]["Function"]["VpcConfig"]
    condition, (when, otherwise) = vpc.value[0], vpc.value[1:]
    assert vpc.name == "If"
    assert condition == "InRedisVpc"
    assert {k: _tag(v) for k, v in when.items()} == {
        "SubnetIds": ("Ref", "RedisSubnetIds"),
        "SecurityGroupIds": ("Ref", "RedisSecurityGroupIds"),
    }
    assert _tag(otherwise) == ("Ref", "AWS::NoValue")  # empty lists: no VPC at all
    for lid in TPL.functions:
        assert "VpcConfig" not in TPL.resource(lid)["Properties"], lid
    params = TPL.raw["Parameters"]
    for name in ("RedisSubnetIds", "RedisSecurityGroupIds"):
        assert (params[name]["Type"], params[name]["Default"]) == ("CommaDelimitedList", "")
    both = TPL.raw["Conditions"]["InRedisVpc"]
    assert both.name == "And"
    assert "RedisSubnetIds" in repr(both.value)
    assert "RedisSecurityGroupIds" in repr(both.value)


def test_the_opentelemetry_layer_and_x_ray_follow_the_tracing_mode() -> None:
    function = TPL.raw["Globals"]["Function"]
    tracing = function["Tracing"]
    assert tracing.name == "If"
    assert tracing.value == ["TracingXRay", "Active", "PassThrough"]
    layers = as_list(function["Layers"])
    conditional = [layer for layer in layers if getattr(layer, "name", None) == "If"]
    assert [c.value[0] for c in conditional] == ["TracingOtlp"]
    assert layer_names(conditional[0]) == ["OpenTelemetry"]
    assert TPL.resource("OpenTelemetry")["Condition"] == "TracingOtlp"
    env = function["Environment"]["Variables"]
    assert env["FUNCMART_TRACING"].value == "TracingMode"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert set(TPL.raw["Parameters"]["TracingMode"]["AllowedValues"]) == {"off", "otlp", "xray"}
