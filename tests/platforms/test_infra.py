"""infra/ against template.yaml: the same functions, the same variables (less the documented
platform-specific ones), generated files current, core kinds valid against the Kubernetes
schemas kubernetes-validate ships (offline), Knative kinds structurally sound."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from funcmart.adapters.broker import cloudevent_type
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.template import ROOT
from tools import manifests

INFRA = ROOT / "infra"
TPL = template.load()
K8S_VERSION = "1.30.0"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomized_files(folder: Path = INFRA) -> list[Path]:
    """Every manifest a `kubectl apply -k infra/` applies, following nested kustomizations."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: list[Path] = []
    for entry in kustomization.get("resources", []):
        path = folder / entry
        found += kustomized_files(path) if path.is_dir() else [path]
    return found


ALL = [(p, d) for p in kustomized_files() for d in documents(p)]
KSVCS = {
    d["metadata"]["name"]: d
    for _, d in ALL
    if d["kind"] == "Service" and d["apiVersion"] == "serving.knative.dev/v1"
}
CONFIG = next(d for _, d in ALL if d["kind"] == "ConfigMap")
SECRET = next(d for _, d in ALL if d["kind"] == "Secret")


def env_names(ksvc: dict[str, Any]) -> set[str]:
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] == CONFIG["metadata"]["name"]
            names |= set(CONFIG["data"])
        if "secretRef" in source:
            assert source["secretRef"]["name"] == SECRET["metadata"]["name"]
            names |= set(SECRET.get("stringData") or SECRET.get("data") or {})
    return names


def by_function() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["funcmart.dev/function"]: d for d in KSVCS.values()}


# ------------------------------------------------------------------- same functions


def test_the_generated_files_are_current() -> None:
    stale = manifests.stale(manifests.generated(TPL))
    assert stale == [], f"run `make manifests`: {[str(p.relative_to(ROOT)) for p in stale]}"


def test_every_template_function_has_a_knative_service_and_nothing_else_does() -> None:
    assert set(by_function()) == set(TPL.functions)


@pytest.mark.parametrize("logical_id", sorted(TPL.functions))
def test_the_service_runs_the_template_handler(logical_id: str) -> None:
    fn = TPL.functions[logical_id]
    ksvc = by_function()[logical_id]
    env = {
        e["name"]: e.get("value") for e in ksvc["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["FUNCMART_FUNCTION"] == logical_id
    assert env["FUNCMART_HANDLER"] == fn.handler
    assert env["FUNCMART_TRIGGER"] == manifests.trigger_of(fn)
    assert ksvc["spec"]["template"]["spec"]["timeoutSeconds"] == fn.timeout
    routes = json.loads(env.get("FUNCMART_ROUTES") or "[]")
    expected = [{"route": f"{r.method} {r.path}", "public": r.public} for r in fn.routes]
    assert routes == expected


@pytest.mark.parametrize("logical_id", sorted(TPL.functions))
def test_environment_variable_names_agree_but_for_documented_ones(logical_id: str) -> None:
    on_aws = set(TPL.functions[logical_id].environment)
    on_knative = env_names(by_function()[logical_id])
    assert on_aws - on_knative <= set(manifests.AWS_ONLY_ENV), on_aws - on_knative
    assert on_knative - on_aws <= set(manifests.KNATIVE_ONLY_ENV), on_knative - on_aws


def test_every_platform_specific_variable_is_documented_in_the_infra_readme() -> None:
    readme = (INFRA / "README.md").read_text()
    for name in [*manifests.AWS_ONLY_ENV, *manifests.KNATIVE_ONLY_ENV]:
        assert f"`{name}`" in readme, name


def test_the_knative_only_variables_are_ones_the_code_reads() -> None:
    code = "\n".join(
        p.read_text() for folder in ("functions", "hosts") for p in (ROOT / folder).rglob("*.py")
    )
    for name in manifests.KNATIVE_ONLY_ENV:
        read_by_code = f'"{name}"' in code
        read_by_server = name in ("WORKERS", "THREADS")  # functions-framework's gunicorn
        assert read_by_code or read_by_server, name


# ----------------------------------------------------------------------- eventing


def test_every_queue_consumer_has_a_trigger_on_the_event_type_of_its_queue() -> None:
    triggers = [d for _, d in ALL if d["kind"] == "Trigger"]
    subscribed = {
        (t["spec"]["subscriber"]["ref"]["name"], t["spec"]["filter"]["attributes"]["type"])
        for t in triggers
    }
    events = manifests.queue_event_types(TPL)
    expected = {
        (manifests.kebab(fn.logical_id), cloudevent_type(events[src.queue]))
        for fn in TPL.functions.values()
        for src in fn.queues
        if src.queue not in manifests.dead_letter_queues(TPL)
    }
    assert subscribed == expected
    for t in triggers:
        delivery = t["spec"]["delivery"]
        assert delivery["retry"] >= 1
        assert delivery["backoffPolicy"] == "exponential"
        assert delivery["deadLetterSink"]["ref"]["name"] == "handle-dead-letters"
        assert delivery["deadLetterSink"]["ref"]["name"] in KSVCS


def test_the_published_event_types_are_the_ones_triggers_filter_on() -> None:
    from funcmart.settings import Settings

    types = {d["spec"]["filter"]["attributes"]["type"] for _, d in ALL if d["kind"] == "Trigger"}
    assert types <= {cloudevent_type(e) for e in Settings.EVENT_QUEUES}


def test_every_schedule_has_a_ping_source() -> None:
    pings = {d["spec"]["sink"]["ref"]["name"]: d for _, d in ALL if d["kind"] == "PingSource"}
    scheduled = {manifests.kebab(f.logical_id) for f in TPL.functions.values() if f.schedules}
    assert set(pings) == scheduled
    assert all(re.fullmatch(r"\S+ \S+ \S+ \S+ \S+", p["spec"]["schedule"]) for p in pings.values())


def test_consumers_scale_to_zero_and_are_not_public() -> None:
    for ksvc in KSVCS.values():
        annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
        consumer = ksvc["metadata"]["labels"]["funcmart.dev/trigger"] != "http"
        assert annotations["autoscaling.knative.dev/min-scale"] == ("0" if consumer else "1")
        assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
        assert int(annotations["autoscaling.knative.dev/target"]) >= 1
        visibility = ksvc["metadata"]["labels"].get("networking.knative.dev/visibility")
        assert (visibility == "cluster-local") == consumer


# ---------------------------------------------------------------------- validation


CORE = [(p, d) for p, d in ALL if "knative.dev" not in d["apiVersion"]]


@pytest.mark.parametrize(
    "doc",
    [d for _, d in CORE],
    ids=[f"{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in CORE],
)
def test_core_kinds_validate_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_works_offline_and_catches_mistakes() -> None:
    broken = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


KNATIVE_REQUIRED = {
    ("serving.knative.dev/v1", "Service"): [("spec", "template", "spec", "containers")],
    ("eventing.knative.dev/v1", "Broker"): [],
    ("eventing.knative.dev/v1", "Trigger"): [("spec", "broker"), ("spec", "subscriber", "ref")],
    ("sources.knative.dev/v1", "PingSource"): [("spec", "schedule"), ("spec", "sink", "ref")],
}
KNATIVE = [(p, d) for p, d in ALL if "knative.dev" in d["apiVersion"]]


@pytest.mark.parametrize(
    "doc", [d for _, d in KNATIVE], ids=[f"{d['kind']}/{d['metadata']['name']}" for _, d in KNATIVE]
)
def test_knative_kinds_have_their_required_fields(doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    assert key in KNATIVE_REQUIRED, f"unexpected Knative kind {key}"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert len(doc["metadata"]["name"]) <= 63
    for path in KNATIVE_REQUIRED[key]:
        node: Any = doc
        for part in path:
            assert isinstance(node, dict), f"{key} needs {'.'.join(path)}"
            assert part in node, f"{key} needs {'.'.join(path)}"
            node = node[part]
    if doc["kind"] == "Service":
        spec = doc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["image"] == "funcmart"
        assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
        assert 0 < spec["containerConcurrency"] <= 1000


def test_sinks_and_subscribers_name_services_that_exist() -> None:
    for _, d in KNATIVE:
        spec = d.get("spec", {})
        refs = [
            spec.get("subscriber", {}).get("ref"),
            spec.get("sink", {}).get("ref"),
            spec.get("delivery", {}).get("deadLetterSink", {}).get("ref"),
        ]
        for ref in filter(None, refs):
            assert ref["kind"] == "Service", ref
            assert ref["name"] in KSVCS, ref


def test_the_kustomization_files_exist() -> None:
    kustomization = yaml.safe_load((INFRA / "kustomization.yaml").read_text())
    for generator in kustomization.get("configMapGenerator", []):
        for name in generator["files"]:
            assert (INFRA / name).is_file(), name
