"""GetProduct cache hits, funcmart beside what a user would pick instead, in the same run:

- funcmart's Knative serving path: the container's command (`python -m <Knative host>`) with
  the environment the Service manifest and the ConfigMap give it (infra/), as deployed; the
  same host's `Runtime` under functions-framework's async mode (bench/ff_aio.py); and the
  host as it was before the ASGI host (`BEFORE`: functions-framework's gunicorn, WORKERS=1
  THREADS=5 as then deployed);
- the same serving path from an image built with OpenTelemetry (`make image TRACING=1`),
  tracing off, and tracing on at 10% sampling exporting OTLP/HTTP to a receiver on 127.0.0.1
  that counts and discards the spans (bench/_otlp_sink.py); the as-deployed row runs without
  OpenTelemetry installed, as the default image (bench/otel.py);
- funcmart's local gateway (`make dev`'s server) serving every route;
- FastAPI under uvicorn, one worker, and Flask under gunicorn, one sync worker
  (bench/peer_apps/: the same Redis work, the same answer).

Every server talks to the same Redis (the benchmark's own redis-server), every cell is driven
by the same load generator (bench/_loadgen.py, its own process) for `seconds` at a fixed
concurrency, and every answer is checked (status 200, `X-Cache: HIT`, the product's id in the
body): one wrong answer fails the cell. Each repeat runs every cell once, in a shuffled order,
so background load falls on every system alike; ratios are taken within a repeat. Each cell
also counts the server's CPU time (its process tree, user + system) per answered request, and
after the last cell each server's memory (PSS of its process tree: what a pod would hold).
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data, otel
from bench.backends import Backends, _stop, serve
from bench.common import ROOT, median
from bench.latency import UNLIMITED, Run, load

PRODUCTS = 50
BEFORE = "82be974"  # main before the ASGI host: functions-framework's gunicorn and Flask
KNATIVE = "knative"
# The same host's Runtime served through functions-framework's async mode (Starlette).
FF_AIO = "knative-ff-aio"
VARIANTS = {FF_AIO: "funcmart, Knative host's Runtime on functions-framework's async mode"}
KNATIVE_BEFORE = "knative-before"
# The serving path from an image built with OpenTelemetry (`make image TRACING=1`), tracing
# off and on: what tracing costs, and that having it installed costs nothing while it is off.
KNATIVE_OTEL_OFF = "knative-otel-off"
KNATIVE_TRACED = "knative-traced"
TRACING = {
    KNATIVE_OTEL_OFF: "funcmart, Knative serving path, image with OpenTelemetry, tracing off",
    KNATIVE_TRACED: f"funcmart, Knative serving path, image with OpenTelemetry, tracing on "
    f"({float(otel.RATIO):.0%} sampled)",
}
GATEWAY = "gateway"
FASTAPI = "fastapi"
FLASK = "flask"
LABELS = {
    KNATIVE: "funcmart, Knative serving path (as deployed)",
    **TRACING,
    **VARIANTS,
    KNATIVE_BEFORE: f"funcmart, Knative serving path @ {BEFORE} (gunicorn, WORKERS=1 THREADS=5)",
    GATEWAY: "funcmart, local gateway",
    FASTAPI: "FastAPI + uvicorn, 1 worker",
    FLASK: "Flask + gunicorn, 1 sync worker",
}
EXPECT = {"status": 200, "header": ["x-cache", "HIT"]}
SMOKE_SYSTEMS = (KNATIVE, *TRACING, *VARIANTS, KNATIVE_BEFORE, GATEWAY, FASTAPI, FLASK)


@dataclass(frozen=True)
class Cell:
    system: str
    concurrency: int


@dataclass
class Result:
    concurrencies: tuple[int, ...]
    repeats: int
    seconds: float
    runs: dict[Cell, list[Run]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # system -> how it was run
    failures: dict[Cell, str] = field(default_factory=dict)  # the first wrong answer
    cpu_ms: dict[Cell, list[float]] = field(default_factory=dict)  # server CPU per request
    pss_mib: dict[str, float] = field(default_factory=dict)  # after the last cell
    # The Knative host's PSS once it has also served a cache miss (its DynamoDB client built):
    # the peers have no miss path, so the comparison above is of hit-only servers.
    pss_after_miss_mib: float | None = None
    profile: Any = None  # bench.profile.Profile of the Knative host under load, when taken
    traced_profile: Any = None  # the same of the traced Knative host
    answered: dict[str, int] = field(default_factory=dict)  # system -> requests, warm-ups too
    exported: dict[str, int] | None = None  # what the OTLP sink received (bench/otel.py)

    def cpu(self, system: str, concurrency: int) -> float:
        return median(self.cpu_ms.get(Cell(system, concurrency), [0.0]))

    def systems(self) -> list[str]:
        return [s for s in LABELS if any(c.system == s for c in self.runs)]

    def has(self, system: str, concurrency: int) -> bool:
        return Cell(system, concurrency) in self.runs

    def figure(self, system: str, concurrency: int, key: str) -> float:
        return median([getattr(r, key) for r in self.runs[Cell(system, concurrency)]])

    def samples(self, system: str, concurrency: int) -> int:
        return sum(r.requests for r in self.runs[Cell(system, concurrency)])

    def ok(self, system: str, concurrency: int) -> bool:
        cell = Cell(system, concurrency)
        return cell not in self.failures and all(r.errors == 0 for r in self.runs[cell])

    def ratio(self, system: str, peer: str, concurrency: int, key: str = "rps") -> float:
        """system / peer, repeat by repeat (both measured in it), then the median."""
        pairs = zip(
            self.runs[Cell(system, concurrency)], self.runs[Cell(peer, concurrency)], strict=False
        )
        return median([getattr(a, key) / getattr(b, key) for a, b in pairs])

    def cpu_ratio(self, system: str, peer: str, concurrency: int) -> float:
        """CPU per hit, system / peer, repeat by repeat, then the median."""
        pairs = zip(
            self.cpu_ms.get(Cell(system, concurrency), []),
            self.cpu_ms.get(Cell(peer, concurrency), []),
            strict=False,
        )
        return median([a / b for a, b in pairs if b])


@dataclass
class Server:
    url: str
    stop: Callable[[], None]
    pid: int | None = None


def knative_module() -> str:
    """The Knative host's module: the container's command is `python -m` this."""
    return "funcmart_hosts.knative"


def manifest_env(function_file: str = "get-product.yaml") -> dict[str, str]:
    """The container's environment as infra/ defines it: the ConfigMap, then the Service's
    own variables (literal values only; the secret and the namespace are not needed here)."""
    import yaml

    env: dict[str, str] = {}
    for doc in yaml.safe_load_all((ROOT / "infra" / "config.yaml").read_text()):
        if doc and doc.get("kind") == "ConfigMap":
            env.update({k: str(v) for k, v in doc["data"].items()})
    for doc in yaml.safe_load_all((ROOT / "infra" / "functions" / function_file).read_text()):
        if doc and doc.get("kind") == "Service":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            env.update({e["name"]: str(e["value"]) for e in container["env"] if "value" in e})
    return env


def _process(cmd: list[str], env: dict[str, str], port: int, log: Path, cwd: Path) -> Server:
    from funcmart_hosts.local import services

    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        services.wait_for_port(port, 90, proc)
    except BaseException:
        _stop(proc)
        raise
    return Server(f"http://127.0.0.1:{port}", lambda: _stop(proc), proc.pid)


def _code_at(commit: str, dest: Path) -> Path:
    """functions/ and hosts/ as of `commit` (git archive) under `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", commit, "functions", "hosts"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def _pss_after_a_miss(server: Server | None, cache: Any) -> float | None:
    """The Knative host's PSS after one GetProduct miss (read from DynamoDB)."""
    if server is None or server.pid is None:
        return None
    pid = data.product_id(0)
    cache.delete(f"product:{pid}")
    load(server.url, 1, [["GET", f"/products/{pid}", dict(THROUGH_THE_GATEWAY), ""]], 0, 1)
    return pss_mib(server.pid)


def _prepare_bytecode(systems: tuple[str, ...], logs: Path, enabled: bool) -> None:
    if not enabled:
        return
    if KNATIVE_BEFORE in systems:
        _code_at(BEFORE, logs / "before-code")
    compile_bytecode([ROOT / "functions", ROOT / "hosts", ROOT / "bench", logs / "before-code"])


def compile_bytecode(trees: list[Path]) -> None:
    """Every server runs from bytecode, as the image's does (its RUN line's compileall):
    where PYTHONDONTWRITEBYTECODE is set, a server would otherwise compile what it imports
    at start, on every start, and hold the compiler's leftovers in its heap."""
    import site
    import sysconfig

    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.update(p for p in site.getsitepackages() if p.startswith(sys.prefix))
    existing = [str(p) for p in [*map(Path, sorted(paths)), *trees] if p.exists()]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *existing],
        stdout=subprocess.DEVNULL,
        check=False,  # a file that does not compile is the server's to report
    )


def pss_mib(pid: int) -> float:
    """Proportional set size of a process and its descendants (Linux), in MiB."""
    from bench.common import _descendants

    total_kib = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024


def start(
    system: str, backends: Backends, table: str, logs: Path, otlp_endpoint: str = ""
) -> Server:
    """One contender's server; `otlp_endpoint`, where the traced one sends its spans."""
    from funcmart_hosts.local import services

    port = services.free_port()
    env = {**backends.env(), "TABLE_NAME": table, "RATE_LIMIT": UNLIMITED["ReadsRateLimit"]}
    python = sys.executable
    log = logs / f"peer-{system}.log"
    if system in (KNATIVE, KNATIVE_BEFORE, *VARIANTS, *TRACING):
        # Every server its own metrics port (each pod has the manifests' one to itself).
        env = {
            **manifest_env(),
            **env,
            "PORT": str(port),
            "METRICS_PORT": str(services.free_port()),
            "FUNCMART_EDGE_TOKEN": EDGE_TOKEN,  # the Secret's key
        }
        env["LOG_LEVEL"] = "INFO"  # access lines on, as deployed: measured with them
        cwd = ROOT / "functions"
        module = knative_module()
        if system == FF_AIO:
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "functions")])
            module = "bench.ff_aio"
        if system in (KNATIVE, *TRACING):
            python = _with_opentelemetry_as_the_image(system, env, logs, otlp_endpoint)
        if system == KNATIVE_BEFORE:
            old = _code_at(BEFORE, logs / "before-code")
            env["PYTHONPATH"] = os.pathsep.join([str(old / "functions"), str(old / "hosts")])
            env["WORKERS"], env["THREADS"] = "1", "5"  # infra/config.yaml then
            cwd = old / "functions"
        cmd = [python, "-m", module, "--host", "127.0.0.1", "--port", str(port)]
        return _process(cmd, env, port, log, cwd)
    if system == FASTAPI:
        cmd = [python, "-m", "uvicorn", "bench.peer_apps.fastapi_app:app", "--workers", "1"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        return _process([*cmd, "--log-level", "warning"], env, port, log, ROOT)
    if system == FLASK:
        cmd = [python, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync"]
        cmd += ["--bind", f"127.0.0.1:{port}", "bench.peer_apps.flask_app:app"]
        return _process(cmd, env, port, log, ROOT)
    if system == GATEWAY:
        gateway = serve(
            backends, table, logs, mode="http", stack="bench-peers", name="peers-gateway",
            parameters=UNLIMITED,
        )  # fmt: skip
        assert gateway.url is not None
        return Server(gateway.url, gateway.stop)
    raise ValueError(system)


def _profiles(
    result: Result, servers: dict[str, Server], reqs: list[list[Any]], seconds: float, logs: Path
) -> None:
    """Where the Knative host's CPU goes under load, tracing off (as deployed) and on."""
    from bench import profile

    if KNATIVE in servers:
        result.profile = profile.under_load(servers[KNATIVE], reqs, 8, seconds, logs, expect=EXPECT)
    if KNATIVE_TRACED in servers:
        result.traced_profile = profile.under_load(
            servers[KNATIVE_TRACED], reqs, 8, seconds, logs, expect=EXPECT, name="knative-traced"
        )


def _with_opentelemetry_as_the_image(
    system: str, env: dict[str, str], logs: Path, otlp_endpoint: str
) -> str:
    """The python of an environment with OpenTelemetry as the image holds it (none by
    default, its tracing set with TRACING=1; this environment otherwise, linked:
    bench/otel.py); tracing turned on in `env` for the traced contender."""
    if system == KNATIVE_TRACED:
        if not otlp_endpoint:
            raise ValueError(f"{system} needs an OTLP endpoint")
        env.update(otel.on(otlp_endpoint))
    if system in TRACING:
        return str(otel.environment(logs / "env-image-tracing", otel.TRACING))
    return str(otel.environment(logs / "env-image", otel.NONE))


def _measure(
    result: Result, cell: Cell, server: Server, reqs: list[list[Any]], seconds: float
) -> Run:
    """One cell: the load, every answer checked, and the server's CPU time per request."""
    from bench.common import cpu_seconds

    cpu_before = cpu_seconds(server.pid) if server.pid else 0.0
    run_ = load(
        server.url, cell.concurrency, reqs, cell.concurrency * 5, seconds, expect=EXPECT, cycle=True
    )
    if server.pid and run_.requests:
        # The warm-up's requests fall in the window too: counted with them.
        spent = cpu_seconds(server.pid) - cpu_before
        total = run_.requests + cell.concurrency * 5
        result.cpu_ms.setdefault(cell, []).append(spent * 1000 / total)
    return run_


# What reaches a pod through infra/'s path (Gateway, activator, queue-proxy): the Gateway's
# token and the proxies' X-Forwarded-For entries. Every server gets the same bytes.
EDGE_TOKEN = "bench-edge-token-" + "0" * 32
THROUGH_THE_GATEWAY = {"X-Forwarded-For": "198.51.100.7, 10.1.0.4", "X-Funcmart-Edge": EDGE_TOKEN}


def requests() -> list[list[Any]]:
    """One GET per cached product, each answer to name its product."""
    out: list[list[Any]] = []
    for n in range(PRODUCTS):
        pid = data.product_id(n)
        out.append(["GET", f"/products/{pid}", dict(THROUGH_THE_GATEWAY), "", f'"id":"{pid}"'])
    return out


def _filler(servers: dict[str, Server]) -> Server:
    """A funcmart server, which caches what it misses (the peers only read the cache)."""
    for system in (GATEWAY, KNATIVE, *TRACING, *VARIANTS, KNATIVE_BEFORE):
        if system in servers:
            return servers[system]
    raise ValueError("no funcmart server among the contenders fills the cache")


def plan(concurrencies: tuple[int, ...], systems: tuple[str, ...]) -> list[Cell]:
    """Every system at every concurrency."""
    return [Cell(s, c) for s in systems for c in concurrencies]


def run(
    backends: Backends,
    logs: Path,
    *,
    concurrencies: tuple[int, ...] = (1, 8, 32),
    repeats: int = 2,
    seconds: float = 10,
    systems: tuple[str, ...] = tuple(LABELS),
    profile_seconds: float = 0,
    bytecode: bool = True,
) -> Result:
    table = backends.make_table()
    data.load_products(backends.dynamodb_client(), table, 0, PRODUCTS)
    result = Result(concurrencies, repeats, seconds)
    _prepare_bytecode(systems, logs, enabled=bytecode)
    cells = plan(concurrencies, systems)
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(otel.sink(logs)) if KNATIVE_TRACED in systems else None
        _rounds(result, backends, table, logs, cells, repeats, seconds, profile_seconds, sink)
        if sink is not None:  # after the servers stopped: what they held at exit is sent
            result.exported = sink.stats()
    result.notes = notes()
    return result


def _rounds(
    result: Result,
    backends: Backends,
    table: str,
    logs: Path,
    cells: list[Cell],
    repeats: int,
    seconds: float,
    profile_seconds: float,
    sink: otel.Sink | None,
) -> None:
    """Every cell `repeats` times, each repeat in a shuffled order; the servers' memory, and
    the Knative host's profile when asked for."""
    import redis

    servers: dict[str, Server] = {}
    cache = redis.Redis.from_url(backends.redis_url)
    try:
        for system in dict.fromkeys(c.system for c in cells):
            servers[system] = start(system, backends, table, logs, sink.url if sink else "")
        reqs = requests()
        warm = [r[:4] for r in reqs]
        rng = random.Random(11)
        for _ in range(repeats):
            order = list(cells)
            rng.shuffle(order)
            for cell in order:
                # funcmart fills the cache on a miss (the peers only read it): every product
                # is cached again before each cell, whatever expired meanwhile.
                load(_filler(servers).url, 4, warm, 0, 30)
                for n in range(PRODUCTS):  # and none expires during the cell (TTL 300 s)
                    cache.expire(f"product:{data.product_id(n)}", 600)
                run_ = _measure(result, cell, servers[cell.system], reqs, seconds)
                result.runs.setdefault(cell, []).append(run_)
                answered = run_.requests + cell.concurrency * 5  # the warm-up's too
                result.answered[cell.system] = result.answered.get(cell.system, 0) + answered
                if run_.failure and cell not in result.failures:
                    result.failures[cell] = run_.failure
        for system, server in servers.items():
            if server.pid:
                result.pss_mib[system] = pss_mib(server.pid)
        result.pss_after_miss_mib = _pss_after_a_miss(servers.get(KNATIVE), cache)
        if profile_seconds:
            _profiles(result, servers, reqs, profile_seconds, logs)
    finally:
        for server in servers.values():
            server.stop()
        cache.close()


def notes() -> dict[str, str]:
    """How each contender was run, for the report."""
    env = manifest_env()
    same = f"`python -m {knative_module()}` as above"
    return {
        KNATIVE: f"`python -m {knative_module()}` (uvicorn, httptools, uvloop; one process), "
        f"THREADS={env.get('THREADS', '8')} (infra/config.yaml), access lines on, "
        "OpenTelemetry not installed (the default image)",
        KNATIVE_OTEL_OFF: f"{same}, with OpenTelemetry installed as `make image TRACING=1` "
        "installs it (API, SDK and semantic conventions, without the SDK's metrics part), "
        f"FUNCMART_TRACING={env.get('FUNCMART_TRACING', 'off')} (infra/config.yaml)",
        KNATIVE_TRACED: f"the same with FUNCMART_TRACING=otlp, OTEL_TRACES_SAMPLER={otel.SAMPLER}, "
        f"OTEL_TRACES_SAMPLER_ARG={otel.RATIO}: spans batched by the SDK's BatchSpanProcessor "
        "and sent as OTLP/HTTP JSON to `python -m bench._otlp_sink` on 127.0.0.1 (its own "
        "process: answers 200, counts the spans, keeps nothing)",
        FF_AIO: "`python -m bench.ff_aio`: `functions_framework.aio.create_asgi_app` (Starlette) "
        "on uvicorn (httptools, uvloop), calling the same host `Runtime`",
        KNATIVE_BEFORE: f"`python -m funcmart_hosts.knative` with functions/ and hosts/ as of "
        f"{BEFORE}: functions-framework's gunicorn, WORKERS=1, THREADS=5",
        GATEWAY: "`python -m bench._serve` (the local platform's gateway, every route)",
        FASTAPI: "`uvicorn bench.peer_apps.fastapi_app:app --workers 1` (uvloop, httptools; "
        "redis.asyncio with hiredis installed, which redis-py uses to parse replies)",
        FLASK: "`gunicorn --workers 1 --worker-class sync bench.peer_apps.flask_app:app`",
    }


if __name__ == "__main__":  # a quick look: python -m bench.peers
    import tempfile

    from bench import backends as _backends

    work = Path(tempfile.mkdtemp(prefix="funcmart-peers-"))
    with _backends.running(work) as b:
        r = run(b, work, concurrencies=(1, 8), repeats=1, seconds=float(os.environ.get("S", 3)))
    for s in r.systems():
        for c in r.concurrencies:
            if r.has(s, c):
                print(
                    f"{LABELS[s]:55} c={c:<3} {r.figure(s, c, 'rps'):7.0f} req/s "
                    f"p50 {r.figure(s, c, 'p50'):6.2f} p99 {r.figure(s, c, 'p99'):6.2f} "
                    f"{'ok' if r.ok(s, c) else 'FAILED ' + r.failures.get(Cell(s, c), '')}"
                )
