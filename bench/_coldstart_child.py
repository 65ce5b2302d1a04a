"""One cold start, in a fresh interpreter started with -S (no site-packages): the function's
environment is already in place, sys.path is the deployment package, as on Lambda.

argv: <json spec>. Prints one JSON line: import_ms, bootstrap_ms, total_ms, modules,
ready_at (the wall clock, time.time(), when the function is ready: the parent splits its
whole-process time there into start-up to ready, and the interpreter's exit), and
ready_cpu_ms (the process's user plus system time from its start until then). With
"exit_at_ready" in the spec the process ends there, without the interpreter's finalisation
(what an instruction count to ready needs).
Runs with the standard library only until the timed imports start.
"""

import json
import resource
import sys
import time

spec = json.loads(sys.argv[1])
sys.path[:0] = spec["path"]

started = time.perf_counter()
if spec["module"] == "boto3":
    import boto3  # noqa: F401

    imported = booted = time.perf_counter()
else:
    import importlib

    module = importlib.import_module(spec["module"])
    imported = time.perf_counter()
    # The clients the function uses, built now if the module did not build them at import
    # (the first invocation would otherwise pay for them).
    deps = getattr(module, "deps", None)
    for name in spec.get("uses", ()):
        getattr(deps, name)
    tables = vars(deps).get("tables") if deps is not None else None
    if tables is not None:
        tables.connection.client  # noqa: B018 - transactions
        for model in spec.get("models", ()):
            getattr(tables, model)._get_connection().connection.client  # noqa: B018
    # With OpenTelemetry on, what the first invocation does before its first span: the tracer
    # provider installed then (and the W3C propagator loaded); nothing is recorded or sent.
    traces = sys.modules.get("funcmart.adapters.tracing")
    if traces is not None and traces.enabled():
        traces.inject()
    booted = time.perf_counter()
usage = resource.getrusage(resource.RUSAGE_SELF)

print(
    json.dumps(
        {
            "import_ms": (imported - started) * 1000,
            "bootstrap_ms": (booted - imported) * 1000,
            "total_ms": (booted - started) * 1000,
            "modules": len(sys.modules),
            "ready_at": time.time() - (time.perf_counter() - booted),
            "ready_cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
        }
    )
)
if spec.get("exit_at_ready"):
    import os

    sys.stdout.flush()
    os._exit(0)
