"""`python -m bench [--smoke] [--only coldstart,peers,http,pipeline,cost,scale]`: run the benchmarks
and write docs/benchmarks.md and docs/benchmarks.png (`make bench` runs it in full).

--smoke runs each benchmark at a tiny size and writes its report to a temporary folder
(unless --out is given): `make test` runs it so that the benchmarks cannot rot.
--functions and --systems narrow the cold start and the GetProduct comparison to some of their
contenders (a partial run: write it with --out, not over docs/benchmarks.md).

The cold start alone, for a few functions, e.g. before and after a change to them:
`python -m bench --only coldstart --functions ResolveOrder,GetProduct --rounds 11
--before main --table-only --out /tmp/coldstart.md`; `--instructions` adds each one's count
of instructions to ready, which the machine's load does not move (valgrind, a minute each).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import backends, report
from bench.common import ROOT

# The cold start table shows each function as of this commit beside today's (before the
# changes that load only what a function uses; see CHANGELOG.md).
COLDSTART_BEFORE = "6a78400"
SECTIONS = ("coldstart", "peers", "http", "pipeline", "cost", "scale")
# What `make bench` runs (under 15 minutes on 2 busy cores); `--only http` adds the local
# gateway's latency for every kind of request.
DEFAULT = ("coldstart", "peers", "pipeline", "cost", "scale")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; a check, not figures")
    parser.add_argument(
        "--only", help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but http)"
    )
    parser.add_argument("--out", type=Path, help="markdown report (default docs/benchmarks.md)")
    parser.add_argument(
        "--functions", help="coldstart: comma-separated functions (default: every function)"
    )
    parser.add_argument(
        "--systems", help="peers: comma-separated contenders of bench/peers.py (default: all)"
    )
    cold = parser.add_argument_group("cold start")
    cold.add_argument("--rounds", type=int, help="fresh processes per target (default 5)")
    cold.add_argument(
        "--before", help=f"each function as of this commit too (default {COLDSTART_BEFORE})"
    )
    cold.add_argument(
        "--table-only",
        action="store_true",
        help="the functions' table alone: no TracingMode rounds, no container image",
    )
    cold.add_argument(
        "--instructions",
        action="store_true",
        help="also count each cold start's instructions to ready (valgrind; slow)",
    )
    args = parser.parse_args(argv)
    default = SECTIONS if args.smoke else DEFAULT
    only = [s for s in (args.only or ",".join(default)).split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {sorted(unknown)}")
    work = Path(tempfile.mkdtemp(prefix="funcmart-bench-"))
    out = args.out or (work / "benchmarks.md" if args.smoke else ROOT / "docs" / "benchmarks.md")
    logs = work / "logs"
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    rep = report.Report(command=command.strip(), smoke=args.smoke)
    started = time.monotonic()

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        t = time.monotonic()
        print(f"[bench] {name} ...", flush=True)
        value = fn()
        rep.seconds[name] = time.monotonic() - t
        print(f"[bench] {name} done in {rep.seconds[name]:.0f} s", flush=True)
        return value

    functions = _listed(args.functions)
    if "coldstart" in only:
        from bench import coldstart

        rep.coldstart = timed(
            "coldstart",
            lambda: coldstart.run(
                rounds=args.rounds or (1 if args.smoke else 5),
                functions=functions or (["ProcessOrder"] if args.smoke else None),
                before=args.before or (None if args.smoke else COLDSTART_BEFORE),
                smoke=args.smoke,
                workdir=work / "coldstart",
                # the heaviest function, and PlaceOrder too in a full run
                traced_also=() if args.smoke else coldstart.TRACED,
                # the differences sought are tens of ms: more rounds than the table's
                tracing_rounds=1 if args.smoke else 15,
                tracing=not args.table_only,
                image=not args.table_only,
                instructions=args.instructions,
            ),
        )
    systems = _listed(args.systems)
    if systems:
        from bench import peers

        unknown = set(systems) - set(peers.LABELS)
        if unknown:
            parser.error(f"unknown systems: {sorted(unknown)}; known: {', '.join(peers.LABELS)}")
    if any(s in only for s in SECTIONS[1:]):
        with backends.running(logs) as b:
            _on_backends(b, only, args.smoke, logs, rep, timed, tuple(systems))
    rep.seconds["total"] = time.monotonic() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rep.markdown(plot_name=out.with_suffix(".png").name))
    rep.plot(out.with_suffix(".png"))
    print(f"[bench] wrote {out} and {out.with_suffix('.png')} in {rep.seconds['total']:.0f} s")
    _clean(work, out)
    return 0


def _on_backends(
    b: backends.Backends,
    only: list[str],
    smoke: bool,
    logs: Path,
    rep: report.Report,
    timed: Callable[..., Any],
    systems: tuple[str, ...] = (),
) -> None:
    """The sections that run against DynamoDB Local, Redis and SQS, in the report's order."""
    if "peers" in only:
        from bench import peers

        rep.peers = timed(
            "peers",
            lambda: peers.run(
                b,
                logs,
                concurrencies=(1, 2) if smoke else (1, 8, 32),
                repeats=1 if smoke else 2,
                seconds=1 if smoke else 10,
                systems=systems or (peers.SMOKE_SYSTEMS if smoke else tuple(peers.LABELS)),
                profile_seconds=2 if smoke else 10,
                bytecode=not smoke,  # a check, not figures: no minute compiling
            ),
        )
    if "http" in only:
        from bench import latency

        rep.http = timed(
            "http",
            lambda: latency.run(
                b,
                logs,
                concurrencies=(1, 2) if smoke else (1, 8),
                repeats=1,
                sizes=latency.SMOKE if smoke else latency.FULL,
            ),
        )
    if "pipeline" in only:
        from bench import pipeline

        scenarios = pipeline.SCENARIOS
        if smoke:
            scenarios = tuple(
                pipeline.Scenario(s.name, s.token, s.gateway_seconds, 4, per_unit=1)
                for s in scenarios
            )
        rep.pipeline = timed(
            "pipeline",
            lambda: pipeline.run(
                b,
                logs,
                scenarios=scenarios,
                sweep=pipeline.SMOKE_SWEEP if smoke else pipeline.FULL_SWEEP,
                repeats=0 if smoke else 2,
                warm_orders=0 if smoke else 300,
            ),
        )
        from bench import knative_consumer

        rep.knative_consumer = timed(
            "knative-consumer",
            lambda: knative_consumer.run(
                b,
                logs,
                pipeline.worker_cpus(),
                orders=10 if smoke else 300,
                repeats=1 if smoke else 2,
            ),
        )
    if "cost" in only:
        from bench import capacity

        rep.cost = timed("cost", lambda: capacity.run(b, logs))
    if "scale" in only:
        from bench import scale

        rep.scale = timed(
            "scale",
            lambda: scale.run(
                b,
                logs,
                sizes=(50, 100) if smoke else scale.SIZES,
                order_sizes=(5, 10) if smoke else scale.ORDER_SIZES,
                concurrencies=(1, 2) if smoke else scale.CONCURRENCIES,
                # many short rounds: the median of the per-round ratios is what counts
                requests=5 if smoke else 60,
                repeats=1 if smoke else 5,
            ),
        )


def _listed(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _clean(work: Path, out: Path) -> None:
    """The deployment packages and logs are tens of MB per run: keep only the report."""
    shutil.rmtree(work / "coldstart", ignore_errors=True)
    if not out.resolve().is_relative_to(work.resolve()):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
