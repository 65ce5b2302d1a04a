"""docs/deploy.md names only files that exist and make targets the Makefile has."""

from __future__ import annotations

import re

from funcmart_hosts.gateway.template import ROOT

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
