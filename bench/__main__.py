"""`python -m bench [--smoke] [--only coldstart,http,pipeline,cost,scale]`: run the benchmarks
and write docs/benchmarks.md and docs/benchmarks.png (`make bench` runs it in full).

--smoke runs each benchmark at a tiny size and writes its report to a temporary folder
(unless --out is given): `make test` runs it so that the benchmarks cannot rot.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import backends, report
from bench.common import ROOT

SECTIONS = ("coldstart", "http", "pipeline", "cost", "scale")
# The commit before the performance work: its code is cold-started beside today's.
BEFORE = "99bb5d0"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; a check, not figures")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, help="markdown report (default docs/benchmarks.md)")
    args = parser.parse_args(argv)
    only = [s for s in (args.only or ",".join(SECTIONS)).split(",") if s]
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

    if "coldstart" in only:
        from bench import coldstart

        rep.coldstart = timed(
            "coldstart",
            lambda: coldstart.run(
                rounds=1 if args.smoke else 11,
                functions=["ProcessOrder"] if args.smoke else None,
                before=None if args.smoke else BEFORE,
                smoke=args.smoke,
                workdir=work / "coldstart",
            ),
        )
    if any(s in only for s in ("http", "pipeline", "cost", "scale")):
        with backends.running(logs) as b:
            if "http" in only:
                from bench import latency

                rep.http = timed(
                    "http",
                    lambda: latency.run(
                        b,
                        logs,
                        concurrencies=(1, 2) if args.smoke else (1, 8, 32),
                        repeats=1 if args.smoke else 3,
                        sizes=latency.SMOKE if args.smoke else latency.FULL,
                    ),
                )
            if "pipeline" in only:
                from bench import pipeline

                scenarios = pipeline.SCENARIOS
                if args.smoke:
                    scenarios = tuple(
                        pipeline.Scenario(s.name, s.token, s.gateway_seconds, 4) for s in scenarios
                    )
                rep.pipeline = timed(
                    "pipeline",
                    lambda: pipeline.run(
                        b, logs, scenarios=scenarios, repeats=1 if args.smoke else 3
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
                        sizes=(50, 100) if args.smoke else scale.SIZES,
                        requests=5 if args.smoke else 300,
                        repeats=1 if args.smoke else 3,
                    ),
                )
    rep.seconds["total"] = time.monotonic() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rep.markdown(plot_name=out.with_suffix(".png").name))
    rep.plot(out.with_suffix(".png"))
    print(f"[bench] wrote {out} and {out.with_suffix('.png')} in {rep.seconds['total']:.0f} s")
    _clean(work, out)
    return 0


def _clean(work: Path, out: Path) -> None:
    """The deployment packages and logs are tens of MB per run: keep only the report."""
    shutil.rmtree(work / "coldstart", ignore_errors=True)
    if not out.resolve().is_relative_to(work.resolve()):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
