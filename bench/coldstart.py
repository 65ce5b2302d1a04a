"""Cold start of every function as it ships: import plus bootstrap, in fresh interpreters,
beside a bare `import boto3` measured in the same rounds, both as whole-process wall time.

What ships is what `sam build` makes with the template's makefile builds (functions/Makefile):
the function package (`build-<Function>`, Lambda's /var/task) and the dependencies layer
(`build-Dependencies`, /opt/python), each with the bytecode it was built with and nothing
more; boto3 and botocore come from the runtime (copied from this environment and compiled, as
the runtime image's are). The benchmark compiles nothing of the artifact: a module shipped
without bytecode is compiled at every cold start, as on Lambda's read-only file system (the
samples run with -B, so nothing is written). The report states how much bytecode there is.

Each sample is one new process started with `python -S` (no site-packages) whose sys.path is
/var/task, /opt/python and the runtime's, in that order, and whose environment is the one
Lambda gives the function:
the template's variables, the runtime's own (LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, ...,
so Tracer and EMF metrics are on, as on Lambda) and credentials. The timer runs from before
the handler module's import until the clients the function uses exist: handler modules
build them at module scope; whatever a module did not build is built by the probe, so that
lazily built clients are counted too. The wall time is the parent's, from starting the
process to its exit: interpreter start-up included, on both sides. Processes are run
round-robin in a shuffled order, so background load falls on every target alike; each figure
is the median over the rounds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
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
    compile_first: tuple[Path, ...] = ()  # what the benchmark compiles before the rounds
    files_bytes: int = 0
    zip_bytes: int = 0


@dataclass
class Result:
    rounds: int
    samples: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    package: Package | None = None
    before: str | None = None  # the commit whose code the "before" targets ran

    def median(self, target: str, key: str = "wall_ms") -> float:
        return median([s[key] for s in self.samples[target]])

    def ratio(self, target: str, key: str = "wall_ms") -> float:
        """Median over the rounds of target / boto3, both measured in the same round."""
        return median(
            [
                s[key] / b[key]
                for s, b in zip(self.samples[target], self.samples[BASELINE], strict=True)
            ]
        )

    def functions(self) -> list[str]:
        return [t for t in self.samples if t != BASELINE and BEFORE not in t]

    def heaviest(self) -> str:
        return max(self.functions(), key=self.median)


BEFORE = " @ "  # "<function> @ <commit>": the function's code as of an earlier commit


RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")


def _bytecode(root: Path) -> tuple[int, int]:
    """(modules, modules with a .pyc beside them in __pycache__) under root."""
    sources = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
    tag = sys.implementation.cache_tag
    compiled = [p for p in sources if (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    return len(sources), len(compiled)


def build_artifact(dest: Path, *, layer_from_site_packages: bool = False) -> Package:
    """What `sam build` ships, built by the template's own makefile targets: the function
    package (every function's is the same) and the dependencies layer; then the runtime's
    boto3. With `layer_from_site_packages` (the smoke run) this environment's site-packages
    stand in for the layer and the runtime, which saves the pip install."""
    import sysconfig

    function, layer, runtime = dest / "function", dest / "layer", dest / "runtime"
    for d in (function, layer):
        d.mkdir(parents=True, exist_ok=True)

    def make(target: str, out: Path) -> None:
        subprocess.run(
            [
                "make",
                "-C",
                str(FUNCTIONS),
                target,
                f"ARTIFACTS_DIR={out}",
                f"PYTHON={sys.executable}",
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )

    make("build-ProcessOrder", function)
    site = Path(sysconfig.get_paths()["purelib"])
    if layer_from_site_packages:
        paths = [function, site]
        how = "the function package from functions/Makefile; this environment's site-packages"
        first: tuple[Path, ...] = (site,)
    else:
        make("build-Dependencies", layer)
        runtime.mkdir(parents=True, exist_ok=True)
        for name in RUNTIME_PROVIDED:
            for src in site.glob(name):
                copy = shutil.copytree if src.is_dir() else shutil.copy2
                copy(src, runtime / src.name)
        paths = [function, layer / "python", runtime]
        how = (
            "the artifact `sam build` makes (functions/Makefile: build-<Function> as /var/task, "
            "build-Dependencies as /opt/python), boto3 and botocore as the runtime provides them"
        )
        first = (runtime,)
    counts = [_bytecode(p) for p in paths[:2]]
    modules, compiled = sum(c[0] for c in counts), sum(c[1] for c in counts)
    package = Package(paths, how, compile_first=first)
    package.bytecode = (
        f"{compiled} of {modules} modules of the function package and the layer ship "
        f"with bytecode{'' if compiled == modules else ' (the rest is compiled at every start)'}"
    )
    package.files_bytes = sum(
        f.stat().st_size for p in paths[:2] if p != site for f in p.rglob("*") if f.is_file()
    )
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
    from funcmart_hosts.gateway.template import load
    from funcmart_hosts.local.config import LocalSettings
    from funcmart_hosts.local.resources import Deployment, QueueRef

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
    from funcmart_hosts.gateway.template import load

    return {lid: fn.module for lid, fn in load(ROOT / "template.yaml").functions.items()}


def sample(paths: list[Path], target: str, module: str, env: dict[str, str]) -> dict[str, float]:
    uses, models = USES.get(target.split(BEFORE)[0], ((), ()))
    spec = {
        "path": [str(p) for p in paths],
        "module": module,
        "uses": list(uses),
        "models": list(models),
    }
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-S", "-B", str(CHILD), json.dumps(spec)],
        env=env,
        cwd=paths[0],
        capture_output=True,
        text=True,
        timeout=60,
    )
    wall = (time.perf_counter() - started) * 1000
    if out.returncode != 0:
        raise RuntimeError(f"cold start of {target} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_ms"] = wall
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
    package = build_artifact(tmp / "artifact", layer_from_site_packages=smoke)
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
        deps = package.paths[1:]
        for lid in chosen:
            if (old / f"{mods[lid]}.py").exists():  # functions added since have no "before"
                plan[f"{lid}{BEFORE}{before}"] = ([old, *deps], mods[lid], envs[lid])
    # The artifact brings its own bytecode; only what stands for the runtime (and an older
    # commit's code) is compiled here, once, before the rounds.
    compile_first = set(package.compile_first)
    compile_first |= {p for t, (paths, _, _) in plan.items() if BEFORE in t for p in paths[:1]}
    for path in compile_first:
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
