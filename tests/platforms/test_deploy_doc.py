"""docs/deploy.md names only files that exist and make targets the Makefile has, and creates
every Secret and key the rendered manifests read, in their namespace."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from funcmart_hosts.gateway.template import ROOT
from tests.platforms.kustomize import render

DOC = (ROOT / "docs/deploy.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def named_paths() -> set[str]:
    quoted = re.findall(r"`([^`\s]+)`", DOC)
    in_commands = re.findall(r"(?:-f|bash|file://)\s*([\w./-]+/[\w./-]+)", DOC)
    candidates = {q.rstrip("/") for q in [*quoted, *in_commands]}
    return {
        c
        for c in candidates
        if re.fullmatch(r"[\w.-]+(/[\w.-]+)*", c)
        and ("/" in c or re.search(r"\.(ya?ml|json|md|sh|toml|py)$", c) or c == "Dockerfile")
    }


def test_every_file_the_guide_names_exists() -> None:
    paths = named_paths()
    assert {"template.yaml", "Dockerfile", "infra/kustomization.yaml"} <= paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


def test_every_make_target_the_guide_uses_exists() -> None:
    targets = set(re.findall(r"\bmake(?: -s)? ([a-z][\w-]*)", DOC))
    assert {"image", "manifests", "dev", "token", "test", "sam-build"} <= targets
    for target in targets:
        assert re.search(rf"^{re.escape(target)}:", MAKEFILE, re.M), target


def test_the_guide_names_the_platform_the_manifests_expect() -> None:
    from tools import manifests

    for value in (
        manifests.GATEWAY_CLASS,
        manifests.PROMETHEUS_RELEASE,
        manifests.INGRESS_NAMESPACE,
        manifests.INGRESS_SERVICE,
        manifests.MONITORING_NAMESPACE,
        manifests.METRICS_PORT,
        manifests.SECRET,
        manifests.REDIS_SECRET,
        manifests.EDGE_SECRET["name"],
        manifests.EDGE_HEADER,
        *manifests.SECRET_KEYS,
    ):
        assert str(value) in DOC, value


def test_the_guide_never_writes_a_secret_into_the_checkout() -> None:
    assert not re.search(r">\s*infra/", DOC)
    assert "secret.yaml" not in DOC
    assert "not durable" in DOC
    assert "Kafka" in DOC


# ------------------------------------------------------------------ every secret it reads


def secret_commands(text: str) -> list[str]:
    """Each `kubectl create secret ...` command of a guide, its continued lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return re.findall(r"kubectl create secret [^\n]*", joined)


def created_by(text: str) -> dict[str, set[str]]:
    """Secret name -> the keys the guide's commands create, each in funcmart's namespace."""
    namespace = yaml.safe_load((ROOT / "infra" / "kustomization.yaml").read_text())["namespace"]
    out: dict[str, set[str]] = {}
    for command in secret_commands(text):
        kind, name = command.split()[3:5]
        assert re.search(rf"(--namespace|-n)[ =]{namespace}\b", command), command
        keys = set(re.findall(r"--from-literal=([\w.-]+)=", command))
        if kind == "tls":
            keys = {"tls.crt", "tls.key"}
        out.setdefault(name, set()).update(keys)
    return out


def refs(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every secretKeyRef, configMapKeyRef, secretRef and configMapRef under `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "configMapKeyRef", "secretRef", "configMapRef"):
                yield key, value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


RENDERED = render()


def test_the_guide_creates_every_secret_key_the_manifests_read() -> None:
    created = created_by(DOC)
    issued = {d["spec"]["secretName"] for d in RENDERED if d["kind"] == "Certificate"}
    config_maps = {
        d["metadata"]["name"]: d.get("data", {}) for d in RENDERED if d["kind"] == "ConfigMap"
    }
    seen = set()
    for doc in RENDERED:
        for kind, ref in refs(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}: {kind} {ref}"
            if kind == "configMapRef":
                assert ref["name"] in config_maps, where
            elif kind == "configMapKeyRef":
                assert ref["key"] in config_maps.get(ref["name"], {}), where
            elif kind == "secretRef":
                assert ref["name"] in created, where
            elif ref.get("optional"):
                # Left out on purpose (a rotation's previous key, JWKS mode): the guide says so.
                assert ref["name"] in created, where
                assert ref["key"] in DOC, where
            else:
                assert ref["key"] in created.get(ref["name"], set()), where
            seen.add(ref.get("name"))
    for gateway in (d for d in RENDERED if d["kind"] == "Gateway"):
        for listener in gateway["spec"]["listeners"]:
            for cert in listener.get("tls", {}).get("certificateRefs", []):
                assert cert["name"] in issued | set(created), cert
    assert {"funcmart-secrets", "funcmart-stripe", "funcmart-redis"} <= seen


def test_the_guides_create_secrets_in_the_functions_namespace() -> None:
    for path in ("docs/deploy.md", "infra/README.md", "README.md"):
        created_by((ROOT / path).read_text())  # asserts --namespace on each command
    assert "funcmart-stripe" in created_by(DOC)


def test_a_command_without_the_namespace_is_caught() -> None:
    import pytest

    with pytest.raises(AssertionError):
        created_by("kubectl create secret generic funcmart-stripe --from-literal=api-key=sk")
    assert created_by(
        "kubectl create secret generic s --namespace funcmart \\\n  --from-literal=a=1 \\\n"
        "  --from-literal=b=2\n"
    ) == {"s": {"a", "b"}}
