"""infra/console (the operator console on Knative, optional) as a cluster gets it: rendered
by the real kubectl, held to the Kubernetes and custom resources' schemas, Knative's default
feature flags, Pod Security "restricted" and our hardening, routed by the API's Gateway, and
serving the same Content-Security-Policy as the local platform."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import yaml

from funcmart_hosts.gateway.template import ROOT
from funcmart_hosts.local.console import csp
from tests.platforms import crds
from tests.platforms.admission import (
    hardened_violations,
    knative_violations,
    restricted_violations,
)
from tests.platforms.kustomize import render

RENDERED = render(ROOT / "infra" / "console")
K8S_VERSION = "1.30.0"


def one(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in RENDERED if d["kind"] == kind]
    return doc


def test_it_renders_a_knative_service_its_route_its_network_policy_and_the_nginx_config() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in RENDERED)
    assert kinds == [
        ("ConfigMap", "funcmart-console-nginx"),
        ("HTTPRoute", "console"),
        ("NetworkPolicy", "console-ingress"),
        ("Service", "console"),
    ]
    assert all(d["metadata"]["namespace"] == "funcmart" for d in RENDERED)


def test_core_kinds_validate_against_the_kubernetes_schema() -> None:
    for doc in RENDERED:
        if doc["apiVersion"] in ("v1", "networking.k8s.io/v1"):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_service_passes_its_crd_schema_a_stock_knative_and_pod_security_restricted() -> None:
    ksvc = one("Service")
    assert crds.violations(ksvc) == []
    assert knative_violations(ksvc) == []
    spec = ksvc["spec"]["template"]["spec"]
    assert restricted_violations(spec) == []
    assert hardened_violations(spec) == []
    assert ksvc["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"


def test_the_gateway_routes_console_paths_to_it_as_it_routes_the_functions() -> None:
    route = one("HTTPRoute")
    assert crds.gateway_violations([route]) == [[]]
    functions = [d for d in yaml.safe_load_all((ROOT / "infra" / "routes.yaml").read_text()) if d]
    gateway = next(d for d in functions if d["kind"] == "Gateway")
    # A function's route (the plain-HTTP listener's one route only redirects to HTTPS)
    some_route = next(
        d for d in functions if d["kind"] == "HTTPRoute" and "backendRefs" in d["spec"]["rules"][0]
    )
    # On the HTTPS listener, as the API's routes
    assert route["spec"]["parentRefs"] == some_route["spec"]["parentRefs"]
    assert route["spec"]["parentRefs"][0]["name"] == gateway["metadata"]["name"]
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == some_route["spec"]["rules"][0]["backendRefs"]
    assert {m["path"]["value"] for m in rule["matches"]} == {"/console"}
    rewrite = rule["filters"][0]["urlRewrite"]["hostname"]
    assert rewrite == "console.funcmart.svc.cluster.local"


def test_nginx_sends_the_policy_the_local_platform_sends_and_serves_the_mounted_files() -> None:
    conf = one("ConfigMap")["data"]["default.conf"]
    (policy,) = re.findall(r'Content-Security-Policy "([^"]+)"', conf)
    assert policy == csp(("https://idp.example.com",))
    ksvc = one("Service")
    (container,) = ksvc["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"alias {mounts['files']}/;" in conf
    volumes = {v["name"]: v for v in ksvc["spec"]["template"]["spec"]["volumes"]}
    assert volumes["files"]["configMap"]["name"] == "funcmart-console"
    assert "listen 8080;" in conf
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]


def test_the_runbook_says_how_to_apply_it() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    assert "kubectl apply -k infra/console" in doc
    assert "kubectl create configmap funcmart-console -n funcmart" in doc
