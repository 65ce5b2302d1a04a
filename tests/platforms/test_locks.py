"""Every install is pinned with hashes: a lock file per install set (`make lock` writes them
with uv), each used by what installs that set (tools/dx.sh for the virtualenvs, the
Dockerfile, functions/Makefile for the Lambda layers), each still satisfying what
pyproject.toml and functions/requirements*.txt ask for; and `make audit` says when it could
not audit."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from funcmart_hosts.gateway.template import ROOT
from tools import audit

LOCK_SH = (ROOT / "tools" / "lock.sh").read_text()
VENV_SETS = re.search(r"^VENV_SETS=\(([^)]*)\)", LOCK_SH, re.M).group(1).split()  # type: ignore[union-attr]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
RUNTIME = ROOT / "functions" / "requirements.txt"
STRIPE = ROOT / "functions" / "requirements-stripe.txt"


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """Package -> (version, its hashes), from a lock file."""
    out: dict[str, tuple[str, list[str]]] = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", lock.read_text()):
        first = entry.split("\n", 1)[0]
        if first.startswith("#") or not first.strip():
            continue
        m = re.match(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)", first)
        assert m, f"{lock.name}: not pinned: {first!r}"
        name = canonicalize_name(m.group(1).split("[")[0])
        out[name] = (m.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
    return out


def requirements_of(extras: list[str]) -> list[Requirement]:
    """What pyproject.toml asks for with these extras (its own extras followed) plus the
    function package's runtime requirements."""
    found: list[Requirement] = []
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in EXTRAS[extra]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == "funcmart":
                todo += list(req.extras)
            else:
                found.append(req)
    return found + file_requirements(RUNTIME) + file_requirements(STRIPE)


def file_requirements(path: Path) -> list[Requirement]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [Requirement(line) for line in lines if line]


SETS = {f"requirements/{s.replace(',', '-')}.lock": s.split(",") for s in VENV_SETS} | {
    "requirements/image.lock": ["hosts"],
}
LOCKS = sorted(
    [
        *SETS,
        "functions/requirements.lock",
        "functions/requirements-stripe.lock",
        "functions/requirements-tracing.lock",
    ]
)


@pytest.mark.parametrize("lock", LOCKS)
def test_every_package_is_pinned_with_its_hashes(lock: str) -> None:
    found = pins(ROOT / lock)
    assert found
    for name, (version, hashes) in found.items():
        assert hashes, f"{lock}: {name}=={version} has no hash"


@pytest.mark.parametrize("lock", sorted(SETS))
def test_each_lock_still_satisfies_what_the_project_asks_for(lock: str) -> None:
    """A requirement added or narrowed in pyproject.toml without `make lock` fails here."""
    found = pins(ROOT / lock)
    for req in requirements_of(SETS[lock]):
        name = canonicalize_name(req.name)
        assert name in found, f"{lock} lacks {req}: run make lock"
        assert req.specifier.contains(found[name][0], prereleases=True), (
            f"{lock} pins {name}=={found[name][0]}, outside {req}: run make lock"
        )


def test_the_layers_lock_what_their_requirements_ask_for() -> None:
    runtime = pins(ROOT / "functions/requirements.lock")
    stripe = pins(ROOT / "functions/requirements-stripe.lock")
    for lock, reqs in ((runtime, file_requirements(RUNTIME)), (stripe, file_requirements(STRIPE))):
        for req in reqs:
            assert req.specifier.contains(lock[canonicalize_name(req.name)][0])
    # One version of a package everywhere: the layers, the image and the virtualenvs.
    for lock in LOCKS:
        for name, (version, _) in pins(ROOT / lock).items():
            if name in runtime:
                assert version == runtime[name][0], (lock, name)


def test_every_virtualenv_the_makefile_makes_has_a_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    used = set(re.findall(r"\$\(DX\) venv \S+ \S+ ([\w,]+)", makefile))
    used |= set(re.findall(r'\$\(DX\) venv "\$\$py" \S+ ([\w,]+)', makefile))
    assert used
    assert used <= set(VENV_SETS)


def test_every_install_uses_a_lock_with_hashes() -> None:
    dx = (ROOT / "tools" / "dx.sh").read_text()
    assert re.search(r"--require-hashes --no-deps -r \"\$lock\"", dx)
    assert "--no-build-isolation -e ." in dx
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*", dockerfile)
    assert installs == [
        "pip install --require-hashes --no-deps -r /tmp/image.lock && rm /tmp/image.lock",
        "pip install --require-hashes --no-deps -r /tmp/requirements-tracing.lock \\",
    ]
    assert "!requirements/image.lock" in (ROOT / ".dockerignore").read_text()
    layers = (ROOT / "functions" / "Makefile").read_text()
    assert layers.count("--require-hashes --no-deps") == 3
    assert "-r requirements.lock" in layers
    assert "-r requirements-stripe.lock" in layers
    assert "-r requirements-tracing.lock" in layers
    assert not re.search(r"-r requirements(-stripe|-tracing)?\.txt", layers)


# ------------------------------------------------------------------------------ audit


def fake_reports(monkeypatch: pytest.MonkeyPatch, reports: dict[str, dict]) -> None:
    def pip_audit(_lock: Path, service: str, _only: set[str] | None = None) -> tuple[dict, str]:
        report = reports.get(service)
        return (report, "") if report is not None else ({}, "ConnectionError: no route")

    monkeypatch.setattr(audit, "pip_audit", pip_audit)


def test_audit_says_so_when_no_database_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What PyPI's JSON API answers here: every package "not found", no vulnerability.
    skipped = {"name": "redis", "skip_reason": "Dependency not found on PyPI"}
    fake_reports(monkeypatch, {"pypi": {"dependencies": [skipped]}})
    assert audit.main([str(ROOT / "functions/requirements.lock")]) == 2
    out = capsys.readouterr()
    assert "0 of" in out.out
    assert "NOT AUDITED" in out.out
    assert "ConnectionError" in out.out
    assert "could not be audited" in out.err


def test_audit_reports_a_vulnerable_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = ROOT / "functions/requirements.lock"
    deps = [{"name": n, "version": v, "vulns": []} for n, (v, _) in pins(lock).items()]
    deps[0]["vulns"] = [{"id": "PYSEC-0000-1"}]
    fake_reports(monkeypatch, {"pypi": {"dependencies": deps}})
    assert audit.main([str(lock)]) == 1
    assert "VULNERABLE" in capsys.readouterr().out
    deps[0]["vulns"] = []
    assert audit.main([str(lock)]) == 0
