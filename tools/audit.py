"""`make audit`: every lock file's packages checked for known vulnerabilities (pip-audit),
saying plainly what could not be checked.

    python -m tools.audit [LOCK ...]     default: every lock file `make lock` writes

pip-audit asks a vulnerability database about each pinned package: PyPI's JSON API first,
then the OSV database for what PyPI did not answer. A package neither answered for is not
"free of known vulnerabilities": it is unaudited, and this says so.

Exit status: 0 when every package was audited and none has a known vulnerability; 1 when
one has; 2 when some package could not be audited (no database reached), whatever the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = sorted([*ROOT.glob("functions/*.lock"), *ROOT.glob("requirements/*.lock")])
SERVICES = ("pypi", "osv")


@dataclass
class Audit:
    """What the databases said of one lock file's packages."""

    vulnerable: dict[str, list[str]] = field(default_factory=dict)  # "name==version" -> ids
    audited: set[str] = field(default_factory=set)
    unaudited: dict[str, str] = field(default_factory=dict)  # "name==version" -> why


def pip_audit(lock: Path, service: str, only: set[str] | None = None) -> tuple[dict, str]:
    """pip-audit's JSON report for `lock` (or for the packages `only` names of it), and
    what it printed on failure."""
    source = lock
    with tempfile.TemporaryDirectory() as tmp:
        if only is not None:
            source = Path(tmp) / "only.txt"
            source.write_text("".join(f"{p}\n" for p in sorted(only)))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--vulnerability-service",
                service,
                "--disable-pip",
                "--no-deps",
                "--requirement",
                str(source),
                "--format",
                "json",
                "--progress-spinner",
                "off",
                "--timeout",
                "15",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "Error" in line or "error" in line]
        return {}, (errors or lines or [f"pip-audit exited {done.returncode}"])[-1]


def audit(lock: Path) -> Audit:
    result = Audit()
    pending: set[str] | None = None  # None: the whole lock file
    for service in SERVICES:
        report, failure = pip_audit(lock, service, pending)
        if failure:
            why = f"{service}: {failure}"
            names = pending if pending is not None else _pins(lock)
            result.unaudited.update({p: why for p in names if p not in result.audited})
            continue
        skipped = set()
        pins = {pin.split("==")[0].lower().replace("_", "-"): pin for pin in _pins(lock)}
        for dep in report.get("dependencies", []):
            name = str(dep["name"]).lower().replace("_", "-")
            pin = pins.get(name, f"{dep['name']}=={dep.get('version', '')}")
            if "skip_reason" in dep:
                skipped.add(pin)
                result.unaudited[pin] = f"{service}: {dep['skip_reason']}"
                continue
            result.audited.add(pin)
            result.unaudited.pop(pin, None)
            if dep.get("vulns"):
                result.vulnerable[pin] = [v["id"] for v in dep["vulns"]]
        if not skipped:
            break
        pending = skipped
    for pin in _pins(lock) - result.audited - set(result.unaudited):
        # pip-audit leaves out what this Python's environment markers exclude.
        result.unaudited[pin] = "not reported (an environment marker this Python does not meet)"
    return result


def _pins(lock: Path) -> set[str]:
    out = set()
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and "==" in line:
            out.add(line.split(";")[0].split(" ")[0].strip())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.audit")
    parser.add_argument("locks", nargs="*", type=Path, default=LOCKS)
    args = parser.parse_args(argv)
    status = 0
    for lock in args.locks:
        found = audit(lock)
        name = lock.relative_to(ROOT) if lock.is_absolute() else lock
        total = len(found.audited) + len(found.unaudited)
        print(f"{name}: {len(found.audited)} of {total} packages audited", end="")
        print(f", {len(found.vulnerable)} with known vulnerabilities")
        for pin, ids in sorted(found.vulnerable.items()):
            print(f"  VULNERABLE {pin}: {', '.join(ids)}")
            status = max(status, 1)
        if found.unaudited:
            reasons = sorted(set(found.unaudited.values()))
            print(f"  NOT AUDITED ({len(found.unaudited)}): no vulnerability database answered")
            for reason in reasons[:3]:
                print(f"    {reason[:200]}")
            status = 2
    if status == 2:
        print(
            "make audit: some packages could not be audited (PyPI's vulnerability data and "
            "api.osv.dev did not answer for them): nothing is known about those, run it where "
            "either is reachable",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
