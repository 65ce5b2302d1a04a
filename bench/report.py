"""docs/benchmarks.md and docs/benchmarks.png from the results of a run."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import git_commit, machine

TARGET_COLD = 1.5
TARGET_HIT_SHARE = 0.5
TARGET_P99_MS = 10.0
TARGET_PIPELINE = 2.0
TARGET_SCALE = 1.2


def _ok(met: bool) -> str:
    return "**met**" if met else "**missed**"


def _ms(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


@dataclass
class Report:
    command: str
    smoke: bool = False
    coldstart: Any = None
    http: Any = None
    pipeline: Any = None
    cost: Any = None
    scale: Any = None
    seconds: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ markdown
    def markdown(self, plot_name: str = "benchmarks.png") -> str:
        m = machine()
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            "# Benchmarks",
            "",
            "Written by `make bench`; do not edit by hand. Benchmarks are measurements, not "
            "tests: `make test` only runs them at a tiny size (`python -m bench --smoke`).",
            "",
            f"- Command: `{self.command}` (`make bench`), at commit `{git_commit()}`, {now}.",
            f"- Machine: {m.line()}.",
            "- The machine is shared: other builds and test suites ran while these figures "
            "were taken, so every figure is a median of repeated runs, runs of what is compared "
            "are interleaved, and ratios are taken within one repeat.",
            "- Time taken: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()) + ".",
            "",
            f"![benchmarks]({plot_name})",
            "",
        ]
        if self.smoke:
            lines += ["**Smoke run: tiny sizes, figures mean nothing.**", ""]
        lines += self._summary()
        for part in (self._coldstart, self._http, self._pipeline, self._cost, self._scale):
            lines += part()
        return "\n".join(lines) + "\n"

    def _summary(self) -> list[str]:
        rows = []
        if self.coldstart is not None:
            c = self.coldstart
            h = c.heaviest()
            rows.append(
                f"| Cold start: heaviest function ≤ {TARGET_COLD}× `import boto3` | "
                f"{h}: {c.ratio(h):.2f}× ({_ms(c.median(h))} ms vs {_ms(c.median('boto3'))} ms) "
                f"| {_ok(c.ratio(h) <= TARGET_COLD)} |"
            )
        if self.http is not None:
            h = self.http
            shares = ", ".join(f"c={c}: {h.ratio(c):.2f}" for c in h.concurrencies)
            rows.append(
                f"| GetProduct cache hits ≥ {TARGET_HIT_SHARE} × the empty function's req/s | "
                f"{shares} | {_ok(all(h.ratio(c) >= TARGET_HIT_SHARE for c in h.concurrencies))} |"
            )
            if 8 in h.concurrencies:
                p99 = h.figure("GetProduct hit", 8, "p99")
                rows.append(
                    f"| GetProduct (hit) p99 ≤ {TARGET_P99_MS:.0f} ms at concurrency 8 | "
                    f"{p99:.1f} ms | {_ok(p99 <= TARGET_P99_MS)} |"
                )
        if self.pipeline is not None:
            p = self.pipeline
            for s in p.scenarios:
                r = p.ratio(s.name)
                rows.append(
                    f"| Pipeline, {s.name}: funcmart ≥ {TARGET_PIPELINE:.0f}× Celery | "
                    f"{p.rate(s.name, 'funcmart'):.1f} vs {p.rate(s.name, 'celery'):.1f} "
                    f"orders/s = {r:.2f}× | {_ok(r >= TARGET_PIPELINE)} |"
                )
        if self.pipeline is not None:
            p = self.pipeline
            s0 = p.scenarios[0].name
            fm, ce = p.cpu_ms(s0, "funcmart")["worker"], p.cpu_ms(s0, "celery")["worker"]
            rows.append(
                f"| (no target) pipeline worker CPU per order, {s0} | funcmart {fm:.1f} ms, "
                f"Celery {ce:.1f} ms ({ce / fm if fm else float('nan'):.2f}× less for funcmart) | |"
            )
        if self.scale is not None:
            sc = self.scale
            for name in ("ListProducts (category)", "GetProduct miss"):
                g = sc.growth(name)
                rows.append(
                    f"| {name}: p50 at {sc.sizes[-1]:,} ≤ {TARGET_SCALE}× p50 at "
                    f"{sc.sizes[0]:,} products | {g:.2f}× | {_ok(g <= TARGET_SCALE)} |"
                )
        if not rows:
            return []
        return ["## Targets", "", "| target | measured | |", "|---|---|---|", *rows, ""]

    def _coldstart(self) -> list[str]:
        c = self.coldstart
        if c is None:
            return []
        pkg = c.package
        base = c.median("boto3")
        lines = [
            "## 1. Cold start",
            "",
            f"Median over {c.rounds} fresh processes each (`python -S`, the deployment package "
            "as sys.path, the function's Lambda environment with tracing and EMF metrics on): "
            "the handler module's import plus building every client the function uses (handler "
            "modules build them at module scope; anything left unbuilt is built by the probe and "
            f"counted). Beside it, a bare `import boto3` in the same processes' rounds: "
            f"**{_ms(base)} ms**. The ratio is taken round by round, then the median.",
            "",
        ]
        if pkg is not None and pkg.files_bytes:
            lines += [
                f"Deployment package ({pkg.how}; measured this way because `sam build` needs "
                "the SAM CLI, too slow to install inside `make bench`): "
                f"**{pkg.files_bytes / 2**20:.1f} MiB** unpacked, "
                f"**{pkg.zip_bytes / 2**20:.1f} MiB** zipped (Lambda's limits: 250 MiB and "
                "50 MiB).",
                "",
            ]
        before = c.before
        head = "| function | import + bootstrap (ms) | × boto3 | modules loaded |"
        rule = "|---|---:|---:|---:|"
        if before:
            head += f" before ({before}) ms | before × boto3 |"
            rule += "---:|---:|"
        lines += [head, rule]
        lines.append(
            f"| `import boto3` | {_ms(base)} | 1.00 | {c.median('boto3', 'modules'):.0f} |"
        )
        for f in sorted(c.functions(), key=c.median, reverse=True):
            row = f"| {f} | {_ms(c.median(f))} | {c.ratio(f):.2f} | {c.median(f, 'modules'):.0f} |"
            key = f"{f} @ {before}"
            if before and key in c.samples:
                row += f" {_ms(c.median(key))} | {c.ratio(key):.2f} |"
            lines.append(row)
        lines += [
            "",
            "What changed (profiled with `python -X importtime` and cProfile first): pynamodb "
            "built a botocore session and client for every model class a function touched "
            "(CancelOrder: four, each re-reading botocore's JSON service data); now one "
            "session and one DynamoDB client per function, shared with the SQS client, which "
            "comes from botocore rather than boto3 (no function imports boto3). Handler modules "
            "build their clients at module scope (`build().ready(...)`), in Lambda's init "
            "phase. The tracer patches botocore only, not every library X-Ray supports.",
            "",
            "What is left: Powertools' event handler (its package imports every resolver, "
            "AppSync and Bedrock included) with pydantic for request validation, botocore "
            "itself, redis-py (which imports `redis.asyncio` unconditionally) and the X-Ray "
            "SDK. Closing the gap to 1.5× would mean leaving Powertools' resolver for a small "
            "router of our own with hand-written validation, or (Python 3.12 runtime) Lambda "
            "SnapStart, which restores an initialised snapshot instead of importing.",
            "",
        ]
        return lines

    def _http(self) -> list[str]:
        h = self.http
        if h is None:
            return []
        lines = [
            "## 2. HTTP latency and throughput (local gateway)",
            "",
            "One gateway process serving every route plus an empty function (the ceiling); the "
            "load generator is a separate process (asyncio, keep-alive, one connection per "
            "concurrent caller). DynamoDB Local, Redis and moto's SQS run on the same 2 cores. "
            f"Median of {h.repeats} repeats; latencies in ms.",
            "",
            "| scenario | concurrency | p50 | p95 | p99 | req/s | errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in h.concurrencies:
            for s in ("Empty", "GetProduct hit", "GetProduct miss", "ListProducts", "PlaceOrder"):
                if (s, c) not in h.runs:
                    continue
                lines.append(
                    f"| {s} | {c} | {h.figure(s, c, 'p50'):.2f} | {h.figure(s, c, 'p95'):.2f} | "
                    f"{h.figure(s, c, 'p99'):.2f} | {h.figure(s, c, 'rps'):.0f} | "
                    f"{h.figure(s, c, 'errors'):.0f} |"
                )
        lines += [
            "",
            "GetProduct hit req/s over the empty function's, per repeat then the median: "
            + ", ".join(f"concurrency {c}: {h.ratio(c):.2f}" for c in h.concurrencies)
            + ".",
            "",
            "Every request to a function also passes its rate limiter (one Redis script call; "
            "the limits are set so high that the benchmark's one caller never reaches them), so a "
            "cache hit is two Redis round trips plus Powertools' resolver and validation, against "
            "a function that does nothing. "
            "The gateway runs one HTTP invocation at a time per process (Powertools' resolver "
            "keeps the current event in class-level state), so at concurrency n a request waits "
            "for up to n-1 others: throughput stays flat past concurrency 1 and latency grows "
            "with n. Routes that wait on DynamoDB Local (miss, list, order) are bound by it: "
            "a consistent GetItem costs it several ms on this machine.",
            "",
        ]
        return lines

    def _pipeline(self) -> list[str]:
        p = self.pipeline
        if p is None:
            return []
        cpus = ",".join(map(str, p.worker_cpus))
        lines = [
            "## 3. Pipeline throughput (OrderPlaced to PAID)",
            "",
            "funcmart: the local platform's queue poller hands ProcessOrder batches of 10 "
            "from SQS (moto, its own process); Celery 5 (prefork, concurrency 1, acks late, "
            "Redis broker) runs the same `services.orders.process_order` over the same adapters, "
            f"DynamoDB Local and Redis. Each worker is one process pinned to CPU {cpus}; the "
            "services are not pinned. Orders are fed in a closed loop (at most 50 in flight) "
            "until every one is PAID; afterwards each order must be PAID and its "
            "`PAYSIM#<orderId>/CHARGE` item must show `captures = 1`. "
            f"Median of {p.repeats} repeats; the ratio is taken within each repeat.",
            "",
            "| scenario | orders | funcmart orders/s | Celery orders/s | funcmart / Celery "
            "| exactly once (funcmart, Celery) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for s in p.scenarios:
            once = ", ".join(
                "yes" if p.exactly_once(s.name, x) else "NO" for x in ("funcmart", "celery")
            )
            lines.append(
                f"| {s.name} | {s.orders} | {p.rate(s.name, 'funcmart'):.1f} | "
                f"{p.rate(s.name, 'celery'):.1f} | {p.ratio(s.name):.2f} | {once} |"
            )
        lines += ["", "CPU per order (ms), by process, median of the repeats:", ""]
        names = list(p.cpu_ms(p.scenarios[0].name, "funcmart"))
        lines += [
            "| scenario | system | " + " | ".join(names) + " |",
            "|---|---|" + "---:|" * len(names),
        ]
        for s in p.scenarios:
            for x in ("funcmart", "celery"):
                cpu = p.cpu_ms(s.name, x)
                lines.append(
                    f"| {s.name} | {x} | "
                    + " | ".join(f"{cpu.get(n, 0):.1f}" for n in names)
                    + " |"
                )
        lines += [
            "",
            "Exactly-once detail: "
            + "; ".join(
                f"{s.name} / {x}: {p.details(s.name, x)}"
                for s in p.scenarios
                for x in ("funcmart", "celery")
            ),
            "",
            "Why the instant case is about even: both sides do the same three table operations "
            "per order against one DynamoDB Local, whose ceiling on this machine is a few "
            "hundred operations per second; Celery, one task at a time, already gets close to "
            "it. funcmart runs the ten records of a batch at once and its worker spends less CPU "
            "per order, but moto (a Python SQS emulator, tens of ms per receive or batch send) "
            "shares the second core with DynamoDB Local. With a payment gateway that takes "
            "time to answer, as real ones do, the records of a batch overlap their waits and "
            "funcmart pulls far ahead. On AWS, SQS costs the worker no CPU and DynamoDB is not a "
            "single local process.",
            "",
        ]
        return lines

    def _cost(self) -> list[str]:
        c = self.cost
        if c is None:
            return []
        rows = c.rows()
        lines = [
            "## 4. DynamoDB cost per operation and per order",
            "",
            "Capacity units as DynamoDB Local reports them (`ReturnConsumedCapacity=INDEXES` on "
            "every call of the functions' own clients), beside the floor the item sizes allow "
            "(reads: 4 KB per unit, 0.5 eventually / 1 strongly consistent; writes: 1 KB per "
            "unit; both ×2 in transactions). A Query on an index is charged to the index; on "
            "writes, index units are what the GSIs (projection ALL) charge on top.",
            "",
            "| step | operation | items | bytes | units | floor | index units (writes) | |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            flag = "excess" if r["table"] > r["floor"] + 1e-9 else ""
            lines.append(
                f"| {r['step']} | {r['operation']} ({r['kind']}) | {r['items']} | {r['bytes']} | "
                f"{r['table']:g} | {r['floor']:g} | {r['indexes']:g} | {flag} |"
            )
        from bench.capacity import LIFECYCLE

        life = [r for r in rows if r["step"] in LIFECYCLE]
        rcu = sum(r["table"] for r in life if r["kind"] == "read")
        wcu = sum(r["table"] for r in life if r["kind"] == "write")
        rf = sum(r["floor"] for r in life if r["kind"] == "read")
        wf = sum(r["floor"] for r in life if r["kind"] == "write")
        idx = sum(r["indexes"] for r in life)
        lines += [
            "",
            f"One order's lifecycle (place → paid → fulfilled): **{rcu:g} RCU and {wcu:g} WCU** "
            f"on the table (floor {rf:g} RCU, {wf:g} WCU), plus {idx:g} index units.",
            "",
            "- Fixed: the payment simulator read its ledger before the conditional capture; "
            "the condition alone is the check now (1 RCU less per order).",
            "- DynamoDB Local charges a transaction less than DynamoDB does (it does not double "
            "every item), so its transaction figures can sit under the floor; the floor is what "
            "AWS would bill.",
            "- Not excess but worth knowing: reads that decide a state change are strongly "
            "consistent (1 unit, not 0.5), and PlaceOrder reads the idempotency key before its "
            "transaction (1 RCU on every first attempt) so that a retry replays its answer even "
            "when stock has run out since. Orders and products are projected whole (ALL) into "
            "both indexes: a product write costs 2 index units, an order's PENDING → PAID "
            "moves it within the open-orders index (delete and insert).",
            "",
        ]
        return lines

    def _scale(self) -> list[str]:
        sc = self.scale
        if sc is None:
            return []
        lines = [
            "## 5. Scale: 1,000 to 100,000 products",
            "",
            "Products written straight into one table with BatchWriteItem ("
            + ", ".join(f"{n:,} in {s:.0f} s" for n, s in sc.load_seconds.items())
            + "); at each size the gateway answers at concurrency 1. "
            f"Median of {sc.repeats} repeats; ms.",
            "",
            "| scenario | products | p50 | p95 | p99 | req/s |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name in ("ListProducts (category)", "ListProducts (catalog)", "GetProduct miss"):
            for n in sc.sizes:
                if (name, n) not in sc.runs:
                    continue
                lines.append(
                    f"| {name} | {n:,} | {sc.figure(name, n, 'p50'):.2f} | "
                    f"{sc.figure(name, n, 'p95'):.2f} | {sc.figure(name, n, 'p99'):.2f} | "
                    f"{sc.figure(name, n, 'rps'):.0f} |"
                )
        lines += [
            "",
            "p50 at the largest size over the smallest: "
            + ", ".join(
                f"{name} {sc.growth(name):.2f}×"
                for name in ("ListProducts (category)", "ListProducts (catalog)", "GetProduct miss")
            )
            + ". Every read is a key lookup or a Query on an index key (never a Scan), so the "
            "cost of a page does not grow with the table.",
            "",
        ]
        return lines

    # ---------------------------------------------------------------------- plot
    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(13, 9))
        ax = axes[0][0]
        if self.coldstart is not None:
            c = self.coldstart
            names = sorted(c.functions(), key=c.median)
            ax.barh(names, [c.median(n) for n in names], color="#4c72b0", label="now")
            if c.before:
                before = [f"{n} @ {c.before}" for n in names]
                ax.barh(
                    names,
                    [c.median(b) if b in c.samples else 0 for b in before],
                    color="none",
                    edgecolor="#c44e52",
                    label=f"before ({c.before})",
                )
            base = c.median("boto3")
            ax.axvline(base, color="black", linestyle="--", label="import boto3")
            ax.axvline(base * TARGET_COLD, color="grey", linestyle=":", label="1.5× boto3")
            ax.set_xlabel("import + bootstrap, ms (median)")
            ax.legend(fontsize=8)
        ax.set_title("Cold start")
        ax = axes[0][1]
        if self.http is not None:
            h = self.http
            scen = ("Empty", "GetProduct hit", "GetProduct miss", "ListProducts", "PlaceOrder")
            width = 0.8 / len(h.concurrencies)
            for i, conc in enumerate(h.concurrencies):
                xs = [j + i * width for j in range(len(scen))]
                ax.bar(xs, [h.figure(s, conc, "rps") for s in scen], width, label=f"c={conc}")
            ax.set_xticks([j + width for j in range(len(scen))])
            ax.set_xticklabels(scen, rotation=15, fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("requests/s (median)")
            ax.legend(fontsize=8)
        ax.set_title("HTTP through the local gateway")
        ax = axes[1][0]
        if self.pipeline is not None:
            p = self.pipeline
            names = [s.name for s in p.scenarios]
            xs = range(len(names))
            ax.bar(
                [x - 0.2 for x in xs], [p.rate(n, "funcmart") for n in names], 0.4, label="funcmart"
            )
            ax.bar([x + 0.2 for x in xs], [p.rate(n, "celery") for n in names], 0.4, label="Celery")
            ax.set_xticks(list(xs))
            ax.set_xticklabels(names, fontsize=8)
            ax.set_ylabel("orders/s, OrderPlaced to PAID (median)")
            ax.legend(fontsize=8)
        ax.set_title("Pipeline: same worker core")
        ax = axes[1][1]
        if self.scale is not None:
            sc = self.scale
            for name in ("ListProducts (category)", "ListProducts (catalog)", "GetProduct miss"):
                ax.plot(sc.sizes, [sc.p50(name, n) for n in sc.sizes], marker="o", label=name)
            ax.set_xscale("log")
            ax.set_xlabel("products in the table")
            ax.set_ylabel("p50 latency, ms")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
        ax.set_title("Scale")
        m = machine()
        fig.suptitle(f"funcmart benchmarks ({m.cores} cores, Python {m.python})")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
