"""`kubectl kustomize infra`, rendered by the real kubectl (Debian's kubernetes-client, which
`make test` installs when missing): what `kubectl apply -k infra/` would send."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from funcmart_hosts.gateway.template import ROOT

INFRA = ROOT / "infra"


def kubectl() -> str:
    found = shutil.which("kubectl")
    assert found, "kubectl is missing: `make test` installs Debian's kubernetes-client"
    return found


def render(folder: Path = INFRA) -> list[dict[str, Any]]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]
