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
process to its exit: interpreter start-up included, on both sides. It is split where the
function is ready: *to ready* (start-up, import and clients: what Lambda's Init Duration
covers) and *exit* (the interpreter's finalisation: atexit handlers, then the collector
walking and freeing every object the imports made, which a Lambda execution environment never
runs: it is frozen between invocations and killed, not exited). CPU is the process's user
plus system time, which background load disturbs far less than wall time. Processes are run
round-robin in a shuffled order, so background load falls on every target alike; each figure
is the median over the rounds.

`tracing_rounds` then measures the heaviest function (and PlaceOrder) as the template deploys
it with each TracingMode, in rounds of their own (shuffled, every mode in every round): `xray`
(the template's default: the rows above), `off`, and `otlp` at the template's 10% sampling,
which adds the OpenTelemetry layer (functions/Makefile: build-OpenTelemetry) to the artifact.
The probe counts what the first invocation with OpenTelemetry does before its first span (the
tracer provider, installed then, and the W3C propagator), as it counts lazily built clients.

With `instructions` (valgrind installed), each target also runs once under valgrind's
callgrind, which counts the instructions the process runs from its start to ready (the child
ends there). A count does not move with the machine's load, so it compares before and after
a change, or one function with another, where wall and CPU times on a shared machine cannot;
it leaves out what does not execute instructions (waiting on the disk, page faults).

`image_run` does the same for the container image's layout (Dockerfile): the dependencies
pip-installed into an environment of their own (pip compiles them, as in the image), /app as
the COPY lines fill it, compiled with compileall as the image's RUN line does, and the
image's command started for one Service with its manifest's environment, timed until its
first answer on its port (GET /healthz).
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import otel
from bench.common import FUNCTIONS, ROOT, median

CHILD = Path(__file__).with_name("_coldstart_child.py")
BASELINE = "boto3"

# What each function touches while warm: Container attributes (the publisher where its requests
# publish events), and the table's item models it reads or writes one by one (transactions go
# through `tables.connection`).
_ORDER_PORTS = ("order_ports", "metrics")
USES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ListProducts": (("products",), ("Product",)),
    "GetProduct": (("products", "cache", "metrics"), ("Product",)),
    "CreateProduct": (("products", "clock", "ids"), ("Product",)),
    "UpdateProduct": (("products", "cache", "clock"), ("Product",)),
    "ArchiveProduct": (("products", "cache", "clock"), ("Product",)),
    "SetStock": (("products", "cache", "clock"), ("Product",)),
    "PlaceOrder": ((*_ORDER_PORTS, "publisher"), ("Idempotency", "Product")),
    "GetOrder": (("orders",), ("Order",)),
    "ListOrders": (("orders",), ("Order",)),
    "CancelOrder": (_ORDER_PORTS, ("Order", "Payment", "SimulatedCharge")),
    "ProcessOrder": ((*_ORDER_PORTS, "publisher", "sqs_client"), ("Order", "SimulatedCharge")),
    "FulfilOrder": ((*_ORDER_PORTS, "sqs_client"), ("Order",)),
    "HandleDeadLetters": ((*_ORDER_PORTS, "sqs_client"), ("Order",)),
    "ReconcileOrders": ((*_ORDER_PORTS, "publisher", "reconcile_policy"), ("Order",)),
    # An operator's resolve looks the order's charge up in the payment ledger.
    "ResolveOrder": ((*_ORDER_PORTS, "payments"), ("Order", "SimulatedCharge")),
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
    image: ImageRun | None = None  # the container image's layout, heaviest Service
    peer_image: ImageRun | None = None  # FastAPI's peer app under uvicorn, the same rounds
    traced: list[str] = field(default_factory=list)  # functions measured in every TracingMode
    tracing_rounds: int = 0
    tracing_layer: str = ""  # how the OpenTelemetry layer was had, for the report
    instructions: dict[str, int] = field(default_factory=dict)  # to ready, per target

    def median(self, target: str, key: str = "wall_ms") -> float:
        return median([s[key] for s in self.samples[target]])

    def difference(self, target: str, reference: str, key: str = "ready_ms") -> float:
        """Median over the rounds of target - reference, both measured in the same round."""
        return median(
            [
                s[key] - r[key]
                for s, r in zip(self.samples[target], self.samples[reference], strict=True)
            ]
        )

    def ratio(self, target: str, key: str = "wall_ms") -> float:
        """Median over the rounds of target / boto3, both measured in the same round."""
        return median(
            [
                s[key] / b[key]
                for s, b in zip(self.samples[target], self.samples[BASELINE], strict=True)
            ]
        )

    def functions(self) -> list[str]:
        return [t for t in self.samples if t != BASELINE and BEFORE not in t and WITH not in t]

    def heaviest(self) -> str:
        return max(self.functions(), key=self.median)


BEFORE = " @ "  # "<function> @ <commit>": the function's code as of an earlier commit
WITH = " with tracing "  # "<function> with tracing <TracingMode>"
# The template's TracingMode values: its default first (what the rows of every function run).
TRACING_MODES = ("xray", "off", "otlp")
# Beside the heaviest function, measured in every TracingMode: the head of an order's trace.
TRACED = ("PlaceOrder",)


def traced(function: str, mode: str) -> str:
    return f"{function}{WITH}{mode}"


def function_of(target: str) -> str:
    return target.split(BEFORE)[0].split(WITH)[0]


RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")


def _bytecode(root: Path) -> tuple[int, int]:
    """(modules, modules with bytecode) under root: a source with a .pyc beside it in
    __pycache__, or a .pyc in place of its source (the layers ship those)."""
    sources = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
    sourceless = [p for p in root.rglob("*.pyc") if "__pycache__" not in p.parts]
    tag = sys.implementation.cache_tag
    compiled = [p for p in sources if (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").exists()]
    return len(sources) + len(sourceless), len(compiled) + len(sourceless)


def build_artifact(dest: Path, *, layer_from_site_packages: bool = False) -> Package:
    """What `sam build` ships, built by the template's own makefile targets: the function
    package (every function's is the same) and the dependencies layer; then the runtime's
    boto3. With `layer_from_site_packages` (the smoke run) this environment's site-packages
    stand in for the layer and the runtime, which saves the pip install."""
    import sysconfig

    function, layer, runtime = dest / "function", dest / "layer", dest / "runtime"
    for d in (function, layer):
        d.mkdir(parents=True, exist_ok=True)
    _make("build-ProcessOrder", function)
    site = Path(sysconfig.get_paths()["purelib"])
    if layer_from_site_packages:
        paths = [function, site]
        how = "the function package from functions/Makefile; this environment's site-packages"
        first: tuple[Path, ...] = (site,)
    else:
        _make("build-Dependencies", layer)
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


def _make(target: str, out: Path) -> None:
    """One of functions/Makefile's build targets, as `sam build` runs it."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["make", "-C", str(FUNCTIONS), target, f"ARTIFACTS_DIR={out}", f"PYTHON={sys.executable}"],
        check=True,
        capture_output=True,
        timeout=900,
    )


def tracing_paths(package: Package, dest: Path, *, smoke: bool = False) -> tuple[list[Path], str]:
    """sys.path of a cold start with TracingMode=otlp: the package's, with the OpenTelemetry
    layer (build-OpenTelemetry) beside the dependencies layer; how it was had. In a smoke run
    this environment's site-packages, which hold OpenTelemetry, stand for it."""
    if smoke:
        return list(package.paths), "this environment's site-packages"
    _make("build-OpenTelemetry", dest)
    layer = dest / "python"
    size = sum(f.stat().st_size for f in layer.rglob("*") if f.is_file())
    modules, compiled = _bytecode(layer)
    how = (
        f"the OpenTelemetry layer (functions/Makefile: build-OpenTelemetry), "
        f"{size / 2**20:.1f} MiB unpacked, {compiled} of {modules} modules with bytecode"
    )
    return [*package.paths[:2], layer, *package.paths[2:]], how


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
        if env.get("PAYMENT_PROVIDER") == "simulator":  # the local default: allowed here
            env["FUNCMART_ALLOW_SIMULATOR"] = "yes-orders-are-not-paid-for"
        envs[lid] = {**runtime, **env}
    return envs


def modules() -> dict[str, str]:
    sys.path.insert(0, str(FUNCTIONS))
    from funcmart_hosts.gateway.template import load

    return {lid: fn.module for lid, fn in load(ROOT / "template.yaml").functions.items()}


def _spec(paths: list[Path], target: str, module: str) -> dict[str, object]:
    uses, models = USES.get(function_of(target), ((), ()))
    return {
        "path": [str(p) for p in paths],
        "module": module,
        "uses": list(uses),
        "models": list(models),
    }


def count_instructions(paths: list[Path], target: str, module: str, env: dict[str, str]) -> int:
    """Instructions one cold start runs from its start to ready (valgrind's callgrind)."""
    spec = {**_spec(paths, target, module), "exit_at_ready": True}
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out",
             sys.executable, "-S", "-B", str(CHILD), json.dumps(spec)],
            env=env, cwd=paths[0], capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"counting {target}'s instructions failed:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def sample(paths: list[Path], target: str, module: str, env: dict[str, str]) -> dict[str, float]:
    spec = _spec(paths, target, module)
    cpu_before = _children_cpu()
    spawned = time.time()
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
    result["ready_ms"] = min(wall, max(0.0, (result.pop("ready_at") - spawned) * 1000))
    result["exit_ms"] = wall - result["ready_ms"]
    result["cpu_ms"] = _children_cpu() - cpu_before  # one child at a time: this one's
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def run(
    rounds: int = 11,
    *,
    functions: list[str] | None = None,
    before: str | None = None,
    smoke: bool = False,
    workdir: Path | None = None,
    traced_also: tuple[str, ...] = TRACED,
    tracing_rounds: int | None = None,
    tracing: bool = True,
    image: bool = True,
    instructions: bool = False,
) -> Result:
    """Every function (or `functions`) and boto3, `rounds` times each; with `before`, the same
    functions as of that commit too, in the same rounds; with `instructions`, each target's
    instruction count once. Then, with `tracing`, the heaviest function and `traced_also` in
    every TracingMode, `tracing_rounds` (default `rounds`) times each; with `image`, the
    container image's start-up beside FastAPI's."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="funcmart-coldstart-"))
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    package = build_artifact(tmp / "artifact", layer_from_site_packages=smoke)
    envs = lambda_environments(home)
    mods = modules()
    plan = _plan(package, envs, mods, functions or list(mods), before, tmp)
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
    _shuffled_rounds(plan, rounds, random.Random(6), result.samples)
    if instructions:
        for target, (paths, module, env) in plan.items():
            result.instructions[target] = count_instructions(paths, target, module, env)
    if tracing:
        _tracing_rounds(
            result, package, envs, mods, [result.heaviest(), *traced_also],
            tracing_rounds or rounds, tmp / "otel-layer", smoke=smoke,
        )  # fmt: skip
    if not image:
        return result
    layout = image_layout(tmp / "image", from_site_packages=smoke)
    result.image = ImageRun(_service_env(result.heaviest())[0], layout)
    result.peer_image = ImageRun("fastapi", layout)
    for _ in range(rounds):  # the two take turns, round by round
        _merge(result.image, image_run(layout, result.heaviest(), 1))
        _merge(result.peer_image, fastapi_run(1))
    return result


Plan = dict[str, tuple[list[Path], str, dict[str, str]]]  # target: sys.path, module, environ


def _plan(
    package: Package,
    envs: dict[str, dict[str, str]],
    mods: dict[str, str],
    chosen: list[str],
    before: str | None,
    tmp: Path,
) -> Plan:
    """boto3 and the `chosen` functions and, with `before`, each of them as of that commit,
    over the same dependencies."""
    plan: Plan = {BASELINE: (package.paths, BASELINE, envs[BASELINE])}
    for lid in chosen:
        plan[lid] = (package.paths, mods[lid], envs[lid])
    if before:
        old = code_at(before, tmp / "before")
        deps = package.paths[1:]
        for lid in chosen:
            if (old / f"{mods[lid]}.py").exists():  # functions added since have no "before"
                plan[f"{lid}{BEFORE}{before}"] = ([old, *deps], mods[lid], envs[lid])
    return plan


def _tracing_rounds(
    result: Result,
    package: Package,
    envs: dict[str, dict[str, str]],
    mods: dict[str, str],
    functions: list[str],
    rounds: int,
    layer_dest: Path,
    *,
    smoke: bool,
) -> None:
    """`functions` as the template deploys them with each TracingMode, every mode of every
    function once per round, in a shuffled order."""
    paths, how = tracing_paths(package, layer_dest, smoke=smoke)
    plan: dict[str, tuple[list[Path], str, dict[str, str]]] = {}
    for fn in dict.fromkeys(f for f in functions if f in mods):
        env = envs[fn]
        if env.get("FUNCMART_TRACING") != TRACING_MODES[0]:
            raise RuntimeError(f"{fn}: the template's TracingMode is not {TRACING_MODES[0]}")
        plan[traced(fn, "xray")] = (package.paths, mods[fn], env)
        plan[traced(fn, "off")] = (package.paths, mods[fn], {**env, "FUNCMART_TRACING": "off"})
        on = otel.on(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318")
        plan[traced(fn, "otlp")] = (paths, mods[fn], {**env, **on})
        result.traced.append(fn)
    _shuffled_rounds(plan, rounds, random.Random(22), result.samples)
    result.tracing_rounds = rounds
    result.tracing_layer = how


def _merge(into: ImageRun, run: ImageRun) -> None:
    into.first_answer_ms += run.first_answer_ms
    into.cpu_ms += run.cpu_ms


def fastapi_run(rounds: int) -> ImageRun:
    """The FastAPI peer app's command (`uvicorn bench.peer_apps.fastapi_app:app`, this
    environment) to its first answer (GET /docs: no Redis needed), `rounds` times."""
    run = ImageRun("fastapi", ImageLayout(ROOT, Path(sys.executable), "this environment"))
    for _ in range(rounds):
        port = _free_port()
        argv = [sys.executable, "-m", "uvicorn", "bench.peer_apps.fastapi_app:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(FUNCTIONS)]),
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached by /docs
        }
        _time_first_answer(run, argv, env, ROOT, port, "/docs")
    return run


def _time_first_answer(
    run: ImageRun, argv: list[str], env: dict[str, str], cwd: Path, port: int, path: str
) -> None:
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        run.first_answer_ms.append(_first_answer(port, proc, started, path))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    run.cpu_ms.append(_children_cpu() - cpu_before)


# ----------------------------------------------------------------- the container image
@dataclass
class ImageLayout:
    app: Path  # /app: the function package and the Knative host, as the COPY lines put them
    python: Path  # the interpreter whose site-packages hold the dependencies
    how: str
    bytecode: str = ""


@dataclass
class ImageRun:
    service: str  # the Knative Service (the heaviest function's)
    layout: ImageLayout
    first_answer_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def median(self, key: str = "first_answer_ms") -> float:
        return median(list(getattr(self, key)))


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _image_requirements() -> list[str]:
    """The arguments of the Dockerfile's `pip install` (requirement files and specifiers)."""
    text = _dockerfile().replace("\\\n", " ")
    (line,) = re.findall(r"^RUN pip install (.*?)(?:&&|$)", text, re.M)
    # What the COPY lines put in /tmp/, by file name: the lock file(s) the install reads.
    copied = {
        Path(src).name: ROOT / src
        for sources, target in re.findall(r"^COPY\s+(.+?)\s+(/tmp/)\s*$", text, re.M)
        for src in sources.split()
    }
    out: list[str] = []
    for arg in (a.strip('"') for a in re.findall(r'"[^"]+"|\S+', line)):
        out.append(str(copied[Path(arg).name]) if arg.startswith("/tmp/") else arg)
    return out


def image_layout(dest: Path, *, from_site_packages: bool = False) -> ImageLayout:
    """The image's files without a container engine: a virtual environment standing for the
    base image's Python, the Dockerfile's `pip install` into it (pip compiles what it
    installs), /app as the COPY lines fill it, then the RUN line's compileall. With
    `from_site_packages` (the smoke run) this environment stands in for the installed one."""
    app = dest / "app"
    app.mkdir(parents=True, exist_ok=True)
    for src, target in re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", _dockerfile(), re.M):
        if not target.startswith("/app"):
            continue
        goal = app / target.removeprefix("/app").lstrip("/")
        for found in sorted(ROOT.glob(src.rstrip("/"))):
            if found.is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(found, goal, dirs_exist_ok=True, ignore=ignore)
            else:
                to = goal / found.name if target.endswith("/") else goal
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(found, to)
    if from_site_packages:
        python, how = Path(sys.executable), "this environment's site-packages for the dependencies"
    else:
        env = dest / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
        python = env / "bin" / "python"
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
             "--disable-pip-version-check", *_image_requirements()],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        how = (
            "the Dockerfile's `pip install` into a fresh environment (pip compiles what it "
            "installs), /app from its COPY lines"
        )
    compile_line = re.search(r"python -m compileall ([^&\n]*?) /app", _dockerfile())
    flags = compile_line.group(1).split() if compile_line else []
    subprocess.run(
        [str(python), "-m", "compileall", *flags, str(app)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    app_n, app_c = _bytecode(app)
    dep_n, dep_c = _bytecode(Path(site))
    layout = ImageLayout(app, python, how)
    layout.bytecode = (
        f"/app: {app_c} of {app_n} modules compiled at build time; dependencies: {dep_c} of "
        f"{dep_n} modules with bytecode"
    )
    return layout


def _service_env(function: str) -> tuple[str, dict[str, str]]:
    """The Knative Service of `function` and its container's environment from infra/: its
    own variables, the shared ConfigMap, and stand-ins for the Secret's keys."""
    import yaml

    for path in sorted((ROOT / "infra" / "functions").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "Service":
                continue
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            env = {v["name"]: str(v["value"]) for v in container.get("env", []) if "value" in v}
            if env.get("FUNCMART_FUNCTION") != function:
                continue
            config = next(
                d for d in yaml.safe_load_all((ROOT / "infra" / "config.yaml").read_text())
                if d and d.get("kind") == "ConfigMap"
            )  # fmt: skip
            name = doc["metadata"]["name"]
            return name, {
                **{k: str(v) for k, v in (config.get("data") or {}).items()},
                **env,
                "REDIS_URL": "redis://127.0.0.1:1/0",  # the Secret's keys (never reached)
                "FUNCMART_JWT_SECRET": secrets.token_hex(32),
                "FUNCMART_EVENT_KEY": secrets.token_hex(32),
                "FUNCMART_EDGE_TOKEN": secrets.token_hex(32),
                "STRIPE_API_KEY": "sk_test_image_benchmark",
                "K_SERVICE": name,
                "K_REVISION": f"{name}-00001",
            }
    raise LookupError(f"no Knative Service runs {function}")


def _shuffled_rounds(
    plan: dict[str, tuple[list[Path], str, dict[str, str]]],
    rounds: int,
    rng: random.Random,
    samples: dict[str, list[dict[str, float]]],
) -> None:
    """Every target of `plan` once per round, in a shuffled order, its sample appended."""
    for _ in range(rounds):
        order = list(plan)
        rng.shuffle(order)
        for target in order:
            paths, module, env = plan[target]
            samples.setdefault(target, []).append(sample(paths, target, module, env))


def image_run(layout: ImageLayout, function: str, rounds: int) -> ImageRun:
    """The image's command for `function`'s Service, `rounds` times: milliseconds from
    starting the process to its first answer on its port."""
    service, env = _service_env(function)
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", _dockerfile(), re.M)
    argv = [str(layout.python) if a in ("python", "python3") else a for a in json.loads(cmd)]
    run = ImageRun(service, layout)
    for _ in range(rounds):
        port, metrics = _free_port(), _free_port()
        full = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(layout.app.parent),
            "PYTHONDONTWRITEBYTECODE": "1",  # the image's ENV
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(layout.app),
            **env,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "METRICS_PORT": str(metrics),
            "METRICS_HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        _time_first_answer(run, argv, full, layout.app, port, "/healthz")
    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_answer(
    port: int, proc: subprocess.Popen[bytes], started: float, path: str = "/healthz"
) -> float:
    """Milliseconds from `started` to the first HTTP answer on 127.0.0.1:port (30 s at most)."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    deadline = started + 30
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the image's command exited with {proc.returncode}:\n{err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(request)
                if conn.recv(12).startswith(b"HTTP/1.1 200"):
                    return (time.perf_counter() - started) * 1000
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"no answer on port {port} within 30 s")
