"""infra/ as a cluster gets it: `kubectl kustomize infra` rendered by the real kubectl (Debian's
kubernetes-client; `make test` installs it), then held against template.yaml (same functions,
same variables less the documented platform-specific ones, every route routed), the
Kubernetes schemas kubernetes-validate ships (offline), the custom resources' published
schemas (tests/platforms/crds.py), Knative's default feature-flag rules,
Pod Security "restricted", and the rule that no secret value is in the repository."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from funcmart.adapters.broker import cloudevent_type
from funcmart.settings import Settings, SettingsError
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.template import ROOT
from funcmart_hosts.knative.host import KnativeSettings
from tests.platforms import crds
from tests.platforms.admission import (
    hardened_violations,
    knative_violations,
    restricted_violations,
)
from tests.platforms.kustomize import render
from tools import function_needs, manifests

INFRA = ROOT / "infra"
TPL = template.load()
K8S_VERSION = "1.30.0"


RENDERED = render()
ALL = [(Path("rendered"), d) for d in RENDERED]
KSVCS = {
    d["metadata"]["name"]: d
    for _, d in ALL
    if d["kind"] == "Service" and d["apiVersion"] == "serving.knative.dev/v1"
}
CONFIG = next(
    d for _, d in ALL if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "funcmart-config"
)


def env_names(ksvc: dict[str, Any]) -> set[str]:
    container = ksvc["spec"]["template"]["spec"]["containers"][0]
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] == CONFIG["metadata"]["name"]
            names |= set(CONFIG["data"])
        if "secretRef" in source:
            assert source["secretRef"]["name"] == manifests.SECRET
            names |= set(manifests.SECRET_KEYS)
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
    # A secret the function's code does not read stays out of its pod (the secrets tests).
    unread = set(manifests.SECRET_KEYS) - set(
        manifests.secret_keys_of(TPL, TPL.functions[logical_id])
    )
    assert on_aws - on_knative <= set(manifests.AWS_ONLY_ENV) | unread, on_aws - on_knative
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
        assert f'"{name}"' in code, name


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


def test_signed_events_are_bound_to_the_consumers_the_triggers_deliver_them_to() -> None:
    from funcmart.adapters.event_signing import DEAD_LETTER_CONSUMER, consumer_key, consumers_of

    for t in (d for _, d in ALL if d["kind"] in ("Trigger", "Broker")):
        spec = t["spec"]
        sink = spec["delivery"]["deadLetterSink"]["ref"]["name"]
        assert consumer_key(sink) == consumer_key(DEAD_LETTER_CONSUMER)
        if t["kind"] == "Trigger":
            subscriber = spec["subscriber"]["ref"]["name"]
            assert consumer_key(subscriber) in consumers_of(spec["filter"]["attributes"]["type"])


def test_the_event_window_outlasts_every_triggers_retries() -> None:
    """A consumer refuses events older than the window: the broker's last retry (and the
    dead letter after it) must still fall inside it."""
    from funcmart.adapters.event_signing import MAX_AGE_SECONDS

    for t in (d for _, d in ALL if d["kind"] in ("Trigger", "Broker")):
        delivery = t["spec"]["delivery"]
        delay = int(re.fullmatch(r"PT(\d+)S", delivery["backoffDelay"])[1])  # type: ignore[index]
        retries = int(delivery["retry"])
        assert delivery["backoffPolicy"] == "exponential"
        # Knative waits backoffDelay * 2^n before retry n (1-based); each attempt may run
        # for the longest function timeout before it fails.
        waits = sum(delay * 2**n for n in range(1, retries + 1))
        attempts = (retries + 1) * max(fn.timeout for fn in TPL.functions.values())
        assert waits + attempts < MAX_AGE_SECONDS, t["metadata"]["name"]


def test_no_deployed_dead_letter_comes_sooner_than_handle_dead_letters_believes_one() -> None:
    """HandleDeadLetters leaves alone an order in its state for less than
    DEAD_LETTER_MIN_AGE_SECONDS (an event posted again, not a dead letter). What each platform
    deploys must not exceed the earliest a message that exhausted its retries can arrive, or
    real dead letters would wait for the reconciler: shorten a retry policy in template.yaml
    or infra/ and this fails."""
    from funcmart.domain.retries import (
        DEAD_LETTER_MIN_AGE_SECONDS,
        earliest_broker_dead_letter_seconds,
        earliest_sqs_dead_letter_seconds,
    )

    name = Settings.env_names("dead_letter_min_age_seconds")[0]
    params = TPL.raw["Parameters"]
    # AWS: the parameter HandleDeadLetters reads, against every queue redriving to its queues
    env = TPL.resource("HandleDeadLetters")["Properties"]["Environment"]["Variables"]
    assert str(getattr(env[name], "value", "")) == "DeadLetterMinAgeSeconds"  # !Ref
    on_aws = int(params["DeadLetterMinAgeSeconds"]["Default"])
    assert on_aws == DEAD_LETTER_MIN_AGE_SECONDS  # one default, where the code falls back to it
    base = int(params["RetryBackoffBaseSeconds"]["Default"])
    cap = int(params["RetryBackoffMaxSeconds"]["Default"])
    consumed = {src.queue for src in TPL.functions["HandleDeadLetters"].queues}
    redriving = [q for q in TPL.queues.values() if q.dead_letter_target in consumed]
    assert len(redriving) == 2
    for q in redriving:
        assert q.max_receive_count is not None
        visibility = int(q.properties["VisibilityTimeout"])
        earliest = earliest_sqs_dead_letter_seconds(q.max_receive_count, base, cap, visibility)
        assert on_aws <= earliest, q.logical_id
    # Knative: the Service's value, against every Trigger dead-lettering into it
    (container,) = KSVCS["handle-dead-letters"]["spec"]["template"]["spec"]["containers"]
    (on_knative,) = [int(e["value"]) for e in container["env"] if e["name"] == name]
    triggers = [d for _, d in ALL if d["kind"] == "Trigger"]
    assert len(triggers) == 2
    for t in triggers:
        # each Trigger's own policy: the Broker's shorter default never applies to one
        delivery = t["spec"]["delivery"]
        assert delivery["deadLetterSink"]["ref"]["name"] == "handle-dead-letters"
        delay = manifests.delay_seconds(delivery["backoffDelay"])
        earliest = earliest_broker_dead_letter_seconds(
            int(delivery["retry"]), delay, delivery["backoffPolicy"]
        )
        assert on_aws <= on_knative <= earliest, t["metadata"]["name"]


def test_every_schedule_has_a_ping_source() -> None:
    pings = {d["spec"]["sink"]["ref"]["name"]: d for _, d in ALL if d["kind"] == "PingSource"}
    scheduled = {manifests.kebab(f.logical_id) for f in TPL.functions.values() if f.schedules}
    assert set(pings) == scheduled
    assert all(re.fullmatch(r"\S+ \S+ \S+ \S+ \S+", p["spec"]["schedule"]) for p in pings.values())


def test_every_function_scales_to_zero_and_nothing_is_exposed_by_knative_itself() -> None:
    for ksvc in KSVCS.values():
        annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/min-scale"] == "0"
        assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
        assert int(annotations["autoscaling.knative.dev/target"]) >= 1
        # The public API is the Gateway's HTTPRoutes only.
        assert ksvc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"


def test_publishers_get_the_broker_from_a_sink_binding_not_a_hard_coded_url() -> None:
    (binding,) = [d for _, d in ALL if d["kind"] == "SinkBinding"]
    assert binding["spec"]["sink"]["ref"] == {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "name": "default",
    }
    selector = binding["spec"]["subject"]["selector"]["matchLabels"]
    bound = {n for n, k in KSVCS.items() if selector.items() <= k["metadata"]["labels"].items()}
    # On AWS a publisher names the queue of an event it publishes (not a dead-letter queue,
    # a secret or the queues to redrive, which are AWS-only variables too).
    event_queue_vars = {Settings.env_names(field)[0] for field in Settings.EVENT_QUEUES.values()}
    publishers = {
        manifests.kebab(f.logical_id)
        for f in TPL.functions.values()
        if set(f.environment) & event_queue_vars
    }
    assert bound == publishers
    assert publishers
    assert not any("broker-ingress" in json.dumps(d) for d in RENDERED)
    namespace = next(d for d in RENDERED if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["bindings.knative.dev/include"] == "true"


# ---------------------------------------------------------------------- validation


CORE_GROUPS = {"v1", "apps/v1", "networking.k8s.io/v1", "policy/v1"}
CORE = [(p, d) for p, d in ALL if d["apiVersion"] in CORE_GROUPS]


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
    ("sources.knative.dev/v1", "SinkBinding"): [("spec", "subject"), ("spec", "sink", "ref")],
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
        (image,) = yaml.safe_load((INFRA / "kustomization.yaml").read_text())["images"]
        assert container["image"] == f"{image['newName']}:{image['newTag']}"
        assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
        assert 0 < spec["containerConcurrency"] <= 1000


CUSTOM = [d for _, d in ALL if d["apiVersion"] not in CORE_GROUPS]
MODELLED = [d for d in CUSTOM if d["apiVersion"] in crds.MODELS]
ROUTING = [d for d in CUSTOM if d["apiVersion"] == crds.GATEWAY_API]
ENVOY_GATEWAY = [d for d in CUSTOM if d["apiVersion"] == crds.ENVOY_GATEWAY]


def test_every_rendered_object_is_held_to_a_published_schema() -> None:
    unchecked = [(d["apiVersion"], d["kind"]) for d in CUSTOM if not crds.covers(d)]
    assert unchecked == []
    assert len(MODELLED) + len(ROUTING) + len(ENVOY_GATEWAY) == len(CUSTOM)


def test_envoy_gateway_kinds_have_the_fields_of_their_type() -> None:
    assert [d["kind"] for d in ENVOY_GATEWAY] == ["HTTPRouteFilter"]
    assert [crds.envoy_gateway_violations(d) for d in ENVOY_GATEWAY] == [[]]
    (doc,) = ENVOY_GATEWAY
    broken = json.loads(json.dumps(doc))
    injection = broken["spec"]["credentialInjection"]
    injection["overwrite"] = "yes"
    injection["headr"] = "X"
    del injection["credential"]["valueRef"]
    assert sorted(crds.envoy_gateway_violations(broken)) == [
        "$.spec.credentialInjection.credential.valueRef: Field required",
        "$.spec.credentialInjection.headr: unknown field",
        "$.spec.credentialInjection.overwrite: 'yes' is not a bool",
    ]


@pytest.mark.parametrize(
    "doc", MODELLED, ids=[f"{d['kind']}/{d['metadata']['name']}" for d in MODELLED]
)
def test_knative_and_monitoring_kinds_validate_against_their_crd_schemas(
    doc: dict[str, Any],
) -> None:
    assert crds.violations(doc) == []


def test_gateway_api_kinds_validate_against_their_schemas() -> None:
    answers = crds.gateway_violations(ROUTING)
    refused = {d["metadata"]["name"]: a for d, a in zip(ROUTING, answers, strict=True) if a}
    assert refused == {}
    assert {d["kind"] for d in ROUTING} == {"Gateway", "HTTPRoute"}


GONE = object()
CONTAINER = ("spec", "template", "spec", "containers", 0)


def _edited(kind: str, path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """The first rendered `kind` with `value` at `path` (GONE: that field removed)."""
    doc = json.loads(json.dumps(next(d for _, d in ALL if d["kind"] == kind)))
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    if value is GONE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("kind", "path", "value", "refusal"),
    [
        ("Service", (*CONTAINER, "imagePullPolicyy"), "Always", "imagePullPolicyy: unknown field"),
        ("Service", (*CONTAINER, "ports", 0, "containerPort"), "8080", "not of the schema's type"),
        ("Service", ("spec", "template", "spec", "containerConcurrency"), "four", "integer"),
        ("Service", (*CONTAINER, "env", 0, "name"), GONE, "name: Field required"),
        ("Service", ("metadata", "labelz"), {}, "labelz: unknown field"),
        ("Trigger", ("spec", "filter", "attributess"), {}, "attributess: unknown field"),
        ("Trigger", ("spec", "delivery", "retry"), "twice", "retry"),
        ("PodMonitor", ("spec", "podMetricsEndpoints", 0, "scheme"), "gopher", "scheme"),
        ("PodMonitor", ("spec", "podMetricsEndpoints", 0, "portt"), "x", "portt: unknown field"),
        ("PrometheusRule", ("spec", "groups", 0, "rules", 0, "for"), "five minutes", "for"),
        ("PingSource", ("spec", "sink"), "reconcile-orders", "sink"),
        ("Certificate", ("spec", "issuerReff"), {}, "issuerReff: unknown field"),
        ("Certificate", ("spec", "issuerRef"), GONE, "issuerRef: Field required"),
        ("Certificate", ("spec", "dnsNames"), "api.funcmart.example", "dnsNames"),
        ("Certificate", ("spec", "privateKey", "algorithm"), "DSA", "algorithm"),
    ],
)
def test_the_crd_schemas_refuse_what_an_api_server_refuses(
    kind: str, path: tuple[str | int, ...], value: object, refusal: str
) -> None:
    found = crds.violations(_edited(kind, path, value))
    assert any(refusal in v for v in found), found


MATCH = ("spec", "rules", 0, "matches", 0)


@pytest.mark.parametrize(
    ("kind", "path", "value", "refusal"),
    [
        ("HTTPRoute", (*MATCH, "method"), "FETCH", "method"),
        ("HTTPRoute", (*MATCH, "path", "type"), "Glob", "type"),
        ("HTTPRoute", ("spec", "rules", 0, "backendRefs", 0, "port"), "http", "port"),
        ("HTTPRoute", ("spec", "rules"), [{}] * 17, "rules"),
        ("Gateway", ("spec", "gatewayClassName"), GONE, "gatewayClassName"),
        ("Gateway", ("spec", "listeners", 1, "tls", "mode"), "Terminat", "tls/mode"),
        ("Gateway", ("spec", "listeners", 1, "port"), 70000, "port"),
    ],
)
def test_the_gateway_api_schemas_refuse_what_an_api_server_refuses(
    kind: str, path: tuple[str | int, ...], value: object, refusal: str
) -> None:
    (found,) = crds.gateway_violations([_edited(kind, path, value)])
    assert any(refusal in v for v in found), found


def test_sinks_and_subscribers_name_services_that_exist() -> None:
    for _, d in KNATIVE:
        spec = d.get("spec", {})
        refs = [
            spec.get("subscriber", {}).get("ref"),
            spec.get("sink", {}).get("ref"),
            spec.get("delivery", {}).get("deadLetterSink", {}).get("ref"),
        ]
        for ref in filter(None, refs):
            if ref["kind"] == "Broker":
                assert ref["name"] in {
                    b["metadata"]["name"] for _, b in KNATIVE if b["kind"] == "Broker"
                }
                continue
            assert ref["kind"] == "Service", ref
            assert ref["name"] in KSVCS, ref


def test_the_kustomization_files_exist() -> None:
    kustomization = yaml.safe_load((INFRA / "kustomization.yaml").read_text())
    for generator in kustomization.get("configMapGenerator", []):
        for name in generator["files"]:
            assert (INFRA / name).is_file(), name


def test_knative_pod_specs_validate_against_the_kubernetes_pod_schema() -> None:
    for name, ksvc in KSVCS.items():
        spec = dict(ksvc["spec"]["template"]["spec"])
        for knative_only in ("containerConcurrency", "timeoutSeconds"):
            spec.pop(knative_only, None)
        # Knative fills in a probe's port (the serving port); Kubernetes requires one.
        spec = json.loads(json.dumps(spec))
        for container in spec["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if "httpGet" in container.get(probe, {}):
                    container[probe]["httpGet"].setdefault("port", manifests.PORT)
        doc = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": name},
            "template": {"metadata": ksvc["spec"]["template"]["metadata"], "spec": spec},
        }
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --------------------------------------------------------- admission by a stock cluster


@pytest.mark.parametrize("name", sorted(KSVCS))
def test_a_stock_knative_admits_the_service_with_its_default_feature_flags(name: str) -> None:
    assert knative_violations(KSVCS[name]) == []


def pods() -> list[tuple[str, dict[str, Any]]]:
    found = [(f"ksvc/{n}", k["spec"]["template"]["spec"]) for n, k in KSVCS.items()]
    for d in RENDERED:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            found.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]))
    return found


@pytest.mark.parametrize("pod", pods(), ids=[n for n, _ in pods()])
def test_every_pod_meets_pod_security_restricted_and_our_hardening(
    pod: tuple[str, dict[str, Any]],
) -> None:
    _, spec = pod
    assert restricted_violations(spec) == []
    assert hardened_violations(spec) == []


def test_the_namespace_enforces_pod_security_restricted() -> None:
    (namespace,) = [d for d in RENDERED if d["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


BROKEN_KSVC_EDITS = {
    "fieldRef": lambda c, _s: c["env"].append(
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
    ),
    "pod securityContext": lambda _c, s: s.update({"securityContext": {"runAsNonRoot": True}}),
    "init container": lambda _c, s: s.update({"initContainers": [{"name": "i", "image": "x"}]}),
    "nodeSelector": lambda _c, s: s.update({"nodeSelector": {"a": "b"}}),
    "hostPath volume": lambda _c, s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "second port": lambda c, _s: c["ports"].append({"name": "metrics", "containerPort": 9464}),
    "reserved port": lambda c, _s: c["ports"][0].update({"containerPort": 8012}),
    "reserved variable": lambda c, _s: c["env"].append({"name": "PORT", "value": "1"}),
    "added capability": lambda c, _s: c["securityContext"]["capabilities"].update(
        {"add": ["NET_ADMIN"]}
    ),
    "probe on another port": lambda c, _s: c["readinessProbe"]["httpGet"].update(
        {"port": "metrics"}
    ),
    "lifecycle hook": lambda c, _s: c.update({"lifecycle": {}}),
    "token automount": lambda _c, s: s.update({"automountServiceAccountToken": True}),
}


@pytest.mark.parametrize("edit", sorted(BROKEN_KSVC_EDITS))
def test_the_knative_rules_refuse_what_a_stock_knative_refuses(edit: str) -> None:
    ksvc = json.loads(json.dumps(next(iter(KSVCS.values()))))
    spec = ksvc["spec"]["template"]["spec"]
    BROKEN_KSVC_EDITS[edit](spec["containers"][0], spec)
    assert knative_violations(ksvc) != []


BROKEN_POD_EDITS = {
    "root": lambda c, _s: c["securityContext"].update({"runAsNonRoot": False}),
    "no seccomp": lambda c, _s: c["securityContext"].pop("seccompProfile"),
    "escalation": lambda c, _s: c["securityContext"].pop("allowPrivilegeEscalation"),
    "capabilities kept": lambda c, _s: c["securityContext"].pop("capabilities"),
    "privileged": lambda c, _s: c["securityContext"].update({"privileged": True}),
    "hostPath": lambda _c, s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "hostNetwork": lambda _c, s: s.update({"hostNetwork": True}),
    "unconfined": lambda c, _s: c["securityContext"].update(
        {"seccompProfile": {"type": "Unconfined"}}
    ),
}


@pytest.mark.parametrize("edit", sorted(BROKEN_POD_EDITS))
def test_the_restricted_rules_refuse_what_pod_security_refuses(edit: str) -> None:
    spec = json.loads(json.dumps(next(iter(KSVCS.values()))["spec"]["template"]["spec"]))
    BROKEN_POD_EDITS[edit](spec["containers"][0], spec)
    assert restricted_violations(spec) != []


def test_every_function_has_its_own_service_account_without_a_mounted_token() -> None:
    accounts = {d["metadata"]["name"]: d for d in RENDERED if d["kind"] == "ServiceAccount"}
    used = [k["spec"]["template"]["spec"]["serviceAccountName"] for k in KSVCS.values()]
    assert sorted(used) == sorted(KSVCS)
    assert set(used) <= set(accounts)
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())


# ------------------------------------------------------------------------- secrets


def test_no_secret_value_is_rendered_or_tracked() -> None:
    assert [d for d in RENDERED if d["kind"] == "Secret"] == []
    tracked = subprocess.run(
        ["git", "ls-files", "infra"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        text = (ROOT / path).read_text(errors="replace")
        for key in manifests.SECRET_KEYS:
            assert not re.search(rf"{key}\s*[:=]\s*\S", text), f"{path} sets {key}"
        assert "stringData" not in text, path
        # (A Gateway's certificateRefs name a Secret with `kind: Secret`, indented.)
        assert not re.search(r"^kind: Secret$", text, re.M), path


def test_infra_renders_from_the_tracked_files_alone(tmp_path: Path) -> None:
    """A fresh clone has no untracked secret file, and rendering must not need one."""
    tracked = subprocess.run(
        ["git", "ls-files", "infra"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, target)
    assert len(render(tmp_path / "infra")) == len(RENDERED)


def secret_refs(ksvc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pod's variables taken from a Secret: name -> its secretKeyRef."""
    (container,) = ksvc["spec"]["template"]["spec"]["containers"]
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def holders(key: str, secret: str = manifests.SECRET) -> set[str]:
    """The functions (logical ids) whose pods get `key` of `secret`."""
    return {
        lid
        for lid, ksvc in by_function().items()
        if any(r["name"] == secret and r["key"] == key for r in secret_refs(ksvc).values())
    }


HTTP_FUNCTIONS = {lid for lid, f in TPL.functions.items() if f.routes}
CONSUMERS = set(TPL.functions) - HTTP_FUNCTIONS


def test_no_pod_takes_a_whole_secret() -> None:
    for d in RENDERED:
        text = json.dumps(d)
        assert '"secretRef"' not in text, d["metadata"]["name"]


def test_pods_read_their_secrets_from_secrets_created_out_of_band() -> None:
    for ksvc in KSVCS.values():
        for ref in secret_refs(ksvc).values():
            assert ref["name"] in (
                manifests.SECRET,
                manifests.STRIPE_SECRET["name"],
                manifests.EDGE_SECRET["name"],
            )
    assert "REDIS_URL" not in CONFIG["data"]
    redis = next(d for d in RENDERED if d["kind"] == "StatefulSet")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "yes"


def test_the_jwt_secret_only_where_tokens_are_verified_and_optional_for_jwks() -> None:
    public = {"ListProducts", "GetProduct", "Health"}
    assert {lid for lid in HTTP_FUNCTIONS if all(r.public for r in TPL.functions[lid].routes)} == (
        public
    )
    assert holders("FUNCMART_JWT_SECRET") == HTTP_FUNCTIONS - public
    for lid in HTTP_FUNCTIONS - public:
        # With FUNCMART_JWKS_URL the Secret holds no HS256 secret, and the pods still start.
        assert secret_refs(by_function()[lid])["FUNCMART_JWT_SECRET"]["optional"] is True


def test_the_event_key_only_where_events_are_signed_or_verified() -> None:
    # Every consumer verifies; of the HTTP functions, those whose requests publish sign (placing
    # publishes OrderPlaced, a retry re-publishes it). Cancelling or resolving publishes
    # nothing: those functions never build a publisher, nor hold the key.
    signers = {"PlaceOrder", "RetryOrder"}
    assert holders("FUNCMART_EVENT_KEY") == CONSUMERS | signers
    assert holders("FUNCMART_EVENT_KEY_PREVIOUS") == CONSUMERS
    for lid in CONSUMERS:
        refs = secret_refs(by_function()[lid])
        assert refs["FUNCMART_EVENT_KEY_PREVIOUS"]["optional"] is True
        assert refs["FUNCMART_EVENT_KEY"].get("optional") is not True


def test_the_redis_url_only_for_the_functions_that_use_redis() -> None:
    users = {lid for lid, f in TPL.functions.items() if function_needs.uses_redis(TPL, f)}
    assert holders("REDIS_URL") == users
    # Every function uses Redis with the template's defaults (the cache, carts, the health
    # probe or the rate limiter); a function without them gets no Redis password.
    assert users == set(TPL.functions)
    unlimited = dataclasses.replace(
        TPL.functions["ListProducts"],
        environment={"RATE_LIMIT_CLASS": "reads", "RATE_LIMIT": "off"},
    )
    assert "REDIS_URL" not in manifests.secret_keys_of(TPL, unlimited)
    assert "REDIS_URL" in manifests.secret_keys_of(TPL, TPL.functions["ListProducts"])


def test_the_stripe_key_only_for_the_functions_that_pay_or_refund() -> None:
    paying = {"ProcessOrder", "CancelOrder", "RetryOrder", "CancelStuckOrder", "ResolveOrder"}
    assert holders(manifests.STRIPE_SECRET["key"], manifests.STRIPE_SECRET["name"]) == paying


@pytest.mark.parametrize("logical_id", sorted(TPL.functions))
def test_each_pod_starts_with_only_the_secrets_it_gets(logical_id: str) -> None:
    """The Knative host's start-up checks pass on the pod's environment as rendered, with a
    value for each Secret key it names and nothing else."""
    ksvc = by_function()[logical_id]
    (container,) = ksvc["spec"]["template"]["spec"]["containers"]
    env = dict(CONFIG["data"])
    if ksvc["metadata"]["labels"].get("funcmart.dev/publishes") == "true":  # the SinkBinding's
        env["K_SINK"] = "http://broker-ingress.knative-eventing.svc.cluster.local/funcmart/default"
    for e in container["env"]:
        env[e["name"]] = e.get("value") or f"{e['name'].lower()}-{'x' * 40}"
    KnativeSettings.load(env)
    if logical_id in CONSUMERS:  # the key it gets is one it cannot start without
        with pytest.raises(SettingsError, match="FUNCMART_EVENT_KEY"):
            KnativeSettings.load({k: v for k, v in env.items() if k != "FUNCMART_EVENT_KEY"})
    else:  # and so is the Gateway's token, which the deployed TRUSTED_EDGE_HOPS needs
        with pytest.raises(SettingsError, match="FUNCMART_EDGE_TOKEN"):
            KnativeSettings.load({k: v for k, v in env.items() if k != "FUNCMART_EDGE_TOKEN"})


# ------------------------------------------------------------------------- routing


# The API's routes (one per HTTP function), apart from the redirect of plain HTTP.
HTTP_ROUTES = {
    d["metadata"]["name"]: d
    for d in RENDERED
    if d["kind"] == "HTTPRoute" and "funcmart.dev/function" in d["metadata"]["labels"]
}


def route_target(method: str, path: str) -> str | None:
    """The Knative Service a request reaches through the Gateway, by the rendered rules."""
    hits = []
    for route in HTTP_ROUTES.values():
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                p = match["path"]
                ok = p["value"] == path if p["type"] == "Exact" else re.fullmatch(p["value"], path)
                if ok and match["method"] == method:
                    (rewrite,) = [f for f in rule["filters"] if f["type"] == "URLRewrite"]
                    hits.append(rewrite["urlRewrite"]["hostname"].split(".")[0])
    assert len(hits) <= 1, (method, path, hits)
    return hits[0] if hits else None


@pytest.mark.parametrize(
    "fn_route",
    [(f.logical_id, r.method, r.path) for f in TPL.functions.values() for r in f.routes],
    ids=lambda x: f"{x[1]} {x[2]}",
)
def test_every_template_route_reaches_its_function_through_the_gateway(
    fn_route: tuple[str, str, str],
) -> None:
    logical_id, method, path = fn_route
    concrete = re.sub(r"\{[^}]+\}", "abc-123", path)
    assert route_target(method, concrete) == manifests.kebab(logical_id)
    assert route_target(method, concrete + "/extra") in (None, *KSVCS)
    if "{" in path:
        assert route_target(method, re.sub(r"\{[^}]+\}", "a/b", path)) != manifests.kebab(
            logical_id
        )


def test_one_path_goes_to_different_services_by_method() -> None:
    assert route_target("GET", "/products") == "list-products"
    assert route_target("POST", "/products") == "create-product"
    assert route_target("DELETE", "/products") is None


def test_routes_reach_only_http_functions_through_the_knative_ingress() -> None:
    gateways = {d["metadata"]["name"] for d in RENDERED if d["kind"] == "Gateway"}
    for route in HTTP_ROUTES.values():
        assert {p["name"] for p in route["spec"]["parentRefs"]} <= gateways
        for rule in route["spec"]["rules"]:
            (backend,) = rule["backendRefs"]
            assert (backend["namespace"], backend["name"]) == (
                manifests.INGRESS_NAMESPACE,
                manifests.INGRESS_SERVICE,
            )
    routed = {
        route_target(r.method, r.path.replace("{", "").replace("}", ""))
        for f in TPL.functions.values()
        for r in f.routes
    }
    consumers = {
        n for n, k in KSVCS.items() if k["metadata"]["labels"]["funcmart.dev/trigger"] != "http"
    }
    assert not routed & consumers
    grant = yaml.safe_load(
        (INFRA / "gateway" / "reference-grant.yaml").read_text().split("---\n", 1)[1]
    )
    assert grant["metadata"]["namespace"] == manifests.INGRESS_NAMESPACE
    assert grant["spec"]["to"] == [
        {"group": "", "kind": "Service", "name": manifests.INGRESS_SERVICE}
    ]


# ----------------------------------------------------------------- client addresses


def test_every_api_route_injects_the_token_the_http_functions_check() -> None:
    (edge,) = ENVOY_GATEWAY
    # Overwritten: a value the client sent never reaches a function.
    assert edge["spec"]["credentialInjection"] == {
        "header": "X-Funcmart-Edge",
        "overwrite": True,
        "credential": {
            "valueRef": {"group": "", "kind": "Secret", "name": manifests.EDGE_SECRET["name"]}
        },
    }
    # Envoy Gateway reads the key "credential" of a Secret in the filter's own namespace.
    assert manifests.EDGE_SECRET["key"] == "credential"
    assert edge["metadata"]["namespace"] == GATEWAY["metadata"]["namespace"]
    for route in HTTP_ROUTES.values():
        for rule in route["spec"]["rules"]:
            refs = [f["extensionRef"] for f in rule["filters"] if f["type"] == "ExtensionRef"]
            assert refs == [
                {
                    "group": "gateway.envoyproxy.io",
                    "kind": "HTTPRouteFilter",
                    "name": edge["metadata"]["name"],
                }
            ], route["metadata"]["name"]
    assert holders(manifests.EDGE_SECRET["key"], manifests.EDGE_SECRET["name"]) == HTTP_FUNCTIONS
    for lid in HTTP_FUNCTIONS:
        assert secret_refs(by_function()[lid])["FUNCMART_EDGE_TOKEN"] == manifests.EDGE_SECRET


def test_the_proxies_in_front_of_an_http_function_are_the_ones_the_functions_trust() -> None:
    """Queue-proxy and the activator (kept in the path) append to X-Forwarded-For on every
    request, the Gateway on those that carry its token; no private range is trusted."""
    for name, ksvc in KSVCS.items():
        annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
        http = ksvc["metadata"]["labels"]["funcmart.dev/trigger"] == "http"
        pinned = annotations.get("autoscaling.knative.dev/target-burst-capacity") == "-1"
        assert pinned == http, name
    assert CONFIG["data"]["TRUSTED_PROXY_HOPS"] == "2"
    assert CONFIG["data"]["TRUSTED_EDGE_HOPS"] == "1"
    assert "TRUSTED_PROXY_CIDRS" not in CONFIG["data"]


# ---------------------------------------------------------------------------- TLS


GATEWAY = next(d for d in RENDERED if d["kind"] == "Gateway")
LISTENERS = {listener["name"]: listener for listener in GATEWAY["spec"]["listeners"]}
CERTIFICATES = [d for d in RENDERED if d["kind"] == "Certificate"]


def routes_on(section: str) -> list[dict[str, Any]]:
    """The HTTPRoutes attached to one listener of the Gateway (or to all of them)."""
    return [
        d
        for d in RENDERED
        if d["kind"] == "HTTPRoute"
        and any(
            p["name"] == GATEWAY["metadata"]["name"] and p.get("sectionName") in (None, section)
            for p in d["spec"]["parentRefs"]
        )
    ]


def test_the_gateway_terminates_tls_with_the_certificate_cert_manager_keeps() -> None:
    https = LISTENERS[manifests.HTTPS_LISTENER]
    assert (https["protocol"], https["port"], https["tls"]["mode"]) == ("HTTPS", 443, "Terminate")
    (ref,) = https["tls"]["certificateRefs"]
    assert (ref.get("group", ""), ref.get("kind", "Secret")) == ("", "Secret")
    (certificate,) = CERTIFICATES
    assert certificate["spec"]["secretName"] == ref["name"]
    assert certificate["metadata"]["namespace"] == GATEWAY["metadata"]["namespace"]
    assert certificate["spec"]["issuerRef"] == manifests.CERT_ISSUER
    assert certificate["spec"]["dnsNames"] == [manifests.API_HOST]


def test_every_api_route_is_served_over_https_only() -> None:
    assert HTTP_ROUTES
    for route in HTTP_ROUTES.values():
        assert route["spec"]["parentRefs"] == [
            {"name": GATEWAY["metadata"]["name"], "sectionName": manifests.HTTPS_LISTENER}
        ]
    assert {d["metadata"]["name"] for d in routes_on(manifests.HTTPS_LISTENER)} == set(HTTP_ROUTES)


def test_plain_http_only_redirects_to_https() -> None:
    http = LISTENERS[manifests.HTTP_LISTENER]
    assert (http["protocol"], http["port"]) == ("HTTP", 80)
    assert set(LISTENERS) == {manifests.HTTP_LISTENER, manifests.HTTPS_LISTENER}
    (redirect,) = routes_on(manifests.HTTP_LISTENER)
    for rule in redirect["spec"]["rules"]:
        assert "backendRefs" not in rule
        assert "matches" not in rule  # every path
        assert rule["filters"] == [
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}
        ]


def _deploy_doc_overlay() -> str:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    m = re.search(r"cat > shop/kustomization\.yaml <<'EOF'\n(.*?)\n *EOF\n", doc, re.S)
    assert m, "docs/deploy.md shows the overlay that names the host and the issuer"
    return textwrap.dedent(m.group(1)) + "\n"


def test_the_guide_s_overlay_names_the_host_and_the_issuer(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "infra"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for path in tracked:
        target = tmp_path / "funcmart" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, target)
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "kustomization.yaml").write_text(_deploy_doc_overlay())
    (certificate,) = [d for d in render(tmp_path / "shop") if d["kind"] == "Certificate"]
    assert certificate["spec"]["dnsNames"] == ["api.shop.example"]
    assert certificate["spec"]["issuerRef"]["name"] == "letsencrypt-prod"
    assert certificate["spec"]["dnsNames"] != [manifests.API_HOST]


# ------------------------------------------------------------------------ lockdown


POLICIES = {d["metadata"]["name"]: d for d in RENDERED if d["kind"] == "NetworkPolicy"}


def test_the_namespace_denies_by_default() -> None:
    deny = POLICIES["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny


def test_functions_take_traffic_only_from_knative_and_prometheus() -> None:
    sources = {
        rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]: {
            p["port"] for p in rule["ports"]
        }
        for rule in POLICIES["functions-ingress"]["spec"]["ingress"]
    }
    assert sources == {
        manifests.INGRESS_NAMESPACE: {8012},
        manifests.SERVING_NAMESPACE: {8012, 8022, 9090},
        manifests.MONITORING_NAMESPACE: {manifests.METRICS_PORT},
    }
    # The application port itself is never reachable from outside the pod: queue-proxy is.
    assert all(8080 not in ports for ports in sources.values())


def test_functions_reach_only_redis_dns_the_broker_the_collector_and_https_outside() -> None:
    egress = POLICIES["functions-egress"]["spec"]["egress"]
    ports = sorted(p["port"] for rule in egress for p in rule["ports"])
    assert ports == [53, 53, 443, 4318, 6379, 8080]
    (collector,) = [r for r in egress if r["ports"][0]["port"] == 4318]
    namespace = collector["to"][0]["namespaceSelector"]["matchLabels"]
    assert namespace == {"kubernetes.io/metadata.name": manifests.OTEL_NAMESPACE}
    assert CONFIG["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == manifests.OTEL_COLLECTOR
    assert manifests.OTEL_COLLECTOR.endswith(f".{manifests.OTEL_NAMESPACE}.svc.cluster.local:4318")
    # X-Ray is for Lambda: Knative traces only once the image carries OpenTelemetry
    assert CONFIG["data"]["FUNCMART_TRACING"] == "off"
    (outside,) = [r for r in egress if "ipBlock" in r["to"][0]]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        outside["to"][0]["ipBlock"]["except"]
    )
    redis_in = POLICIES["redis-ingress"]["spec"]
    assert redis_in["ingress"][0]["from"][0]["podSelector"] == manifests.FUNCTION_PODS


def test_every_function_pod_is_selected_by_the_policies() -> None:
    selector = manifests.FUNCTION_PODS["matchLabels"]
    for ksvc in KSVCS.values():
        assert selector.items() <= ksvc["spec"]["template"]["metadata"]["labels"].items()


# ---------------------------------------------------------------------- monitoring


def test_kube_prometheus_stack_finds_the_pod_monitor_and_the_rules() -> None:
    (monitor,) = [d for d in RENDERED if d["kind"] == "PodMonitor"]
    (rule,) = [d for d in RENDERED if d["kind"] == "PrometheusRule"]
    for d in (monitor, rule):
        assert d["metadata"]["labels"]["release"] == manifests.PROMETHEUS_RELEASE
    assert monitor["spec"]["selector"] == manifests.FUNCTION_PODS
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    replace = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "__address__"]
    assert replace[0]["replacement"] == f"$1:{manifests.METRICS_PORT}"
    alerts = yaml.safe_load((INFRA / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts
    assert not any("prometheus.io/" in json.dumps(k) for k in KSVCS.values())


def test_the_metrics_port_is_neither_declared_nor_routed() -> None:
    for ksvc in KSVCS.values():
        (container,) = ksvc["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [manifests.PORT]
    assert manifests.METRICS_PORT not in (8008, 8012, 8013, 8022, 9090, 9091, manifests.PORT)
    assert CONFIG["data"]["METRICS_PORT"] == str(manifests.METRICS_PORT)


# ------------------------------------------------------------------------------ IAM


def test_each_service_account_has_its_functions_own_policy_from_the_template() -> None:
    """IRSA per function mirrors template.yaml: the same DynamoDB actions on the same table
    and indexes, nothing else (the SQS statements are the broker's job on Knative)."""
    policies = json.loads((INFRA / "iam" / "policies.json").read_text())
    accounts = {d["metadata"]["name"] for d in RENDERED if d["kind"] == "ServiceAccount"}
    assert set(policies) == accounts
    for name, entry in policies.items():
        props = TPL.resource(entry["function"])["Properties"]
        expected = set()
        for policy in props.get("Policies") or []:
            for st in policy["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                expected |= {a for a in actions if a.startswith("dynamodb:")}
        statements = (entry["policy"] or {}).get("Statement", [])
        granted = {a for st in statements for a in st["Action"]}
        assert granted == expected, name
        resources = {r for st in statements for r in st["Resource"]}
        assert all(r.startswith(manifests.TABLE_ARN) for r in resources), name
        assert not any("*" in a for a in granted), name
    trust = json.loads((INFRA / "iam" / "trust-policy.json").read_text())
    conditions = trust["Statement"][0]["Condition"]["StringEquals"]
    subjects = [v for k, v in conditions.items() if k.endswith(":sub")]
    assert subjects == [f"system:serviceaccount:{manifests.NAMESPACE}:${{SERVICE_ACCOUNT}}"]


def test_the_warm_component_keeps_one_pod_of_each_http_function_and_nothing_else(
    tmp_path: Path,
) -> None:
    from tests.platforms.kustomize import render

    # GIVEN an overlay of infra/ with the warm component, as docs/deploy.md shows it
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (tmp_path / "funcmart").symlink_to(INFRA.parent)
    (overlay / "kustomization.yaml").write_text(
        "resources: [../funcmart/infra]\ncomponents: [../funcmart/infra/components/warm]\n"
    )
    # WHEN kubectl renders it
    services = [
        d for d in render(overlay) if d["kind"] == "Service" and "serving" in d["apiVersion"]
    ]
    # THEN HTTP functions keep one pod, consumers and schedules still scale to zero
    assert len(services) == len(KSVCS)
    for ksvc in services:
        http = ksvc["metadata"]["labels"]["funcmart.dev/trigger"] == "http"
        annotations = ksvc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["autoscaling.knative.dev/min-scale"] == ("1" if http else "0")


def test_the_table_has_one_name_off_aws() -> None:
    table = json.loads((ROOT / "localstack/init/ready.d/table.json").read_text())
    assert CONFIG["data"]["TABLE_NAME"] == table["TableName"] == manifests.TABLE_NAME
    policies = json.loads((INFRA / "iam" / "policies.json").read_text())
    arns = {
        arn
        for entry in policies.values()
        if entry["policy"]
        for statement in entry["policy"]["Statement"]
        for arn in statement["Resource"]
    }
    assert arns
    assert all(arn.split(":table/")[1].split("/")[0] == table["TableName"] for arn in arns)
