"""Cold start of every function: import plus bootstrap, in fresh interpreters, beside a bare
`import boto3` measured in the same run.

Each sample is one new process started with `python -S` (no site-packages) whose sys.path is
the deployment package (`pip install -r functions/requirements.txt --target` plus functions/,
what `sam build` puts in the zip) and whose environment is the one Lambda gives the function:
the template's variables, the runtime's own (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...,
so Tracer and EMF metrics are on, as on Lambda) and credentials. The timer runs from before
the handler module's import until the clients the function uses exist: handler modules
build them at module scope; whatever a module did not build is built by the probe, so that
lazily built clients are counted too. Processes are run round-robin in a shuffled order, so
background load falls on every target alike; each figure is the median over the rounds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import FUNCTIONS, ROOT, median

CHILD = Path(__file__).with_name("_coldstart_child.py")
BASELINE = "boto3"

# What each function touches while warm: Container attributes, and the table's item models it
# reads or writes one by one (transactions go through `tables.connection`).
_ORDER_PORTS = ("order_ports", "metrics")
USES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ListProducts": (("products",), ("Product",)),
    "GetProduct": (("products", "cache", "metrics"), ("Product",)),
    "CreateProduct": (("products", "clock", "ids"), ("Product",)),
    "UpdateProduct": (("products", "cache", "clock"), ("Product",)),
    "ArchiveProduct": (("products", "cache", "clock"), ("Product",)),
    "SetStock": (("products", "cache", "clock"), ("Product",)),
    "PlaceOrder": (_ORDER_PORTS, ("Idempotency", "Product")),
    "GetOrder": (("orders",), ("Order",)),
    "ListOrders": (("orders",), ("Order",)),
    "CancelOrder": (_ORDER_PORTS, ("Order", "Payment", "SimulatedCharge")),
    "ProcessOrder": ((*_ORDER_PORTS, "sqs_client"), ("Order", "SimulatedCharge")),
    "FulfilOrder": ((*_ORDER_PORTS, "sqs_client"), ("Order",)),
    "HandleDeadLetters": ((*_ORDER_PORTS, "sqs_client"), ("Order",)),
    "ReconcileOrders": ((*_ORDER_PORTS, "reconcile_policy"), ("Order",)),
}


@dataclass
class Package:
    paths: list[Path]  # sys.path of a cold start: the package (code and dependencies)
    how: str  # how it was built, for the report
    bytecode: str = "compiled by the benchmark before the rounds (`compileall`)"
    files_bytes: int = 0
    zip_bytes: int = 0


@dataclass
class Result:
    rounds: int
    samples: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    package: Package | None = None
    before: str | None = None  # the commit whose code the "before" targets ran

    def median(self, target: str, key: str = "total_ms") -> float:
        return median([s[key] for s in self.samples[target]])

    def ratio(self, target: str) -> float:
        """Median over the rounds of target / boto3, both measured in the same round."""
        return median(
            [
                s["total_ms"] / b["total_ms"]
                for s, b in zip(self.samples[target], self.samples[BASELINE], strict=True)
            ]
        )

    def functions(self) -> list[str]:
        return [t for t in self.samples if t != BASELINE and BEFORE not in t]

    def heaviest(self) -> str:
        return max(self.functions(), key=self.median)


BEFORE = " @ "  # "<function> @ <commit>": the function's code as of an earlier commit


def build_package(dest: Path, *, reuse_site_packages: bool = False) -> Package:
    """The deployment package in `dest`: dependencies plus the code of functions/.

    With `reuse_site_packages` (the smoke run) the current environment's site-packages stand
    in for the dependencies, which saves the pip install."""
    dest.mkdir(parents=True, exist_ok=True)
    code = dest / "code"
    shutil.copytree(
        FUNCTIONS, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
    )
    if reuse_site_packages:
        import sysconfig

        deps = Path(sysconfig.get_paths()["purelib"])
        return Package([code, deps], "functions/ + this environment's site-packages")
    deps = dest / "deps"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(deps),
            "-r",
            str(FUNCTIONS / "requirements.txt"),
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    for item in code.iterdir():  # one folder, as in the zip Lambda unpacks to /var/task
        shutil.move(str(item), deps / item.name)
    shutil.rmtree(code)
    package = Package([deps], "`pip install -r functions/requirements.txt --target` + functions/")
    package.files_bytes = sum(p.stat().st_size for p in deps.rglob("*") if p.is_file())
    archive = dest / "package.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for p in sorted(deps.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(deps))
    package.zip_bytes = archive.stat().st_size
    archive.unlink()
    return package


def code_at(commit: str, dest: Path) -> Path:
    """functions/ as of `commit` (git archive), to run the same cold starts on older code."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", commit, "functions"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "functions"


def lambda_environments(home: Path) -> dict[str, dict[str, str]]:
    """Each function's environment as Lambda sets it (template variables resolved as AWS
    would, the runtime's variables, credentials), and a minimal one for the baseline."""
    sys.path.insert(0, str(FUNCTIONS))
    from funcmart.platforms.local.config import LocalSettings
    from funcmart.platforms.local.resources import Deployment, QueueRef
    from funcmart.platforms.local.template import load

    tpl = load(ROOT / "template.yaml")
    deployment = Deployment(tpl, LocalSettings(), "redis://127.0.0.1:6379/0", None, None)
    for lid in tpl.queues:
        name = deployment.name(lid)
        url = f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}"
        deployment.queues[lid] = QueueRef(lid, name, url, deployment.arn("sqs", name))
    runtime = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # no ~/.aws of the machine running the benchmark
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
        "AWS_SECRET_ACCESS_KEY": "benchmark",
        "AWS_SESSION_TOKEN": "benchmark",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    envs = {BASELINE: dict(runtime)}
    for lid, fn in tpl.functions.items():
        env = deployment.function_env(fn)
        env.pop("AWS_SAM_LOCAL", None)  # on Lambda itself, not an emulator
        envs[lid] = {**runtime, **env}
    return envs


def modules() -> dict[str, str]:
    sys.path.insert(0, str(FUNCTIONS))
    from funcmart.platforms.local.template import load

    return {lid: fn.module for lid, fn in load(ROOT / "template.yaml").functions.items()}


def sample(paths: list[Path], target: str, module: str, env: dict[str, str]) -> dict[str, float]:
    uses, models = USES.get(target.split(BEFORE)[0], ((), ()))
    spec = {
        "path": [str(p) for p in paths],
        "module": module,
        "uses": list(uses),
        "models": list(models),
    }
    out = subprocess.run(
        [sys.executable, "-S", "-B", str(CHILD), json.dumps(spec)],
        env=env,
        cwd=paths[0],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold start of {target} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(
    rounds: int = 11,
    *,
    functions: list[str] | None = None,
    before: str | None = None,
    smoke: bool = False,
    workdir: Path | None = None,
) -> Result:
    """Every function (or `functions`) and boto3, `rounds` times each; with `before`, the same
    functions as of that commit too, in the same rounds."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="funcmart-coldstart-"))
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    package = build_package(tmp / "package", reuse_site_packages=smoke)
    envs = lambda_environments(home)
    mods = modules()
    chosen = functions or list(mods)
    plan: dict[str, tuple[list[Path], str, dict[str, str]]] = {
        BASELINE: (package.paths, BASELINE, envs[BASELINE])
    }
    for lid in chosen:
        plan[lid] = (package.paths, mods[lid], envs[lid])
    if before:
        old = code_at(before, tmp / "before")
        deps = package.paths[1:] if smoke else package.paths
        for lid in chosen:
            if (old / f"{mods[lid]}.py").exists():  # functions added since have no "before"
                plan[f"{lid}{BEFORE}{before}"] = ([old, *deps], mods[lid], envs[lid])
    # Bytecode is compiled once, before the rounds (-B keeps the samples from writing any), so
    # every sample reads .pyc files as a warm file cache would serve them.
    for path in {p for paths, _, _ in plan.values() for p in paths}:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", str(path)],
            check=False,
            capture_output=True,
            timeout=600,
        )
    result = Result(rounds=rounds, package=package, before=before)
    rng = random.Random(6)
    for _ in range(rounds):
        order = list(plan)
        rng.shuffle(order)
        for target in order:
            paths, module, env = plan[target]
            result.samples.setdefault(target, []).append(sample(paths, target, module, env))
    return result
