"""docs/benchmarks.md and docs/benchmarks.png from the results of a run."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import git_commit, machine

TARGET_COLD = 1.5  # P1: the heaviest function's cold start over `python -c "import boto3"`
TARGET_PIPELINE = 2.0  # P3: funcmart orders/s over the best-tuned Celery's
TARGET_PIPELINE_CPU = 0.5  # P3: funcmart worker CPU per order over Celery's
TARGET_SCALE = 1.2  # P5: p50 at the largest size over p50 at the smallest
TARGET_TRACING_MS = 50.0  # P1: cold start with tracing on (otlp, 10%) over tracing off, at most


def _ok(met: bool) -> str:
    return "**met**" if met else "**missed**"


def _ms(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _numbered(lines: list[str]) -> list[str]:
    """Sections numbered in the order they appear (a run may leave some out)."""
    out, n = [], 0
    for line in lines:
        if line.startswith("## ") and line[3:4].isdigit():
            n += 1
            line = f"## {n}. {line.split('. ', 1)[1]}"
        out.append(line)
    return out


@dataclass
class Report:
    command: str
    smoke: bool = False
    coldstart: Any = None
    peers: Any = None
    http: Any = None
    pipeline: Any = None
    knative_consumer: Any = None
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
            "- The machine may be shared with other work while the figures are taken: what is "
            "compared runs interleaved (shuffled or alternating order, every repeat running "
            "every contender), and ratios are taken within a repeat, then the median.",
            "- Time taken: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()) + ".",
            "",
            f"![benchmarks]({plot_name})",
            "",
        ]
        if self.smoke:
            lines += ["**Smoke run: tiny sizes, figures mean nothing.**", ""]
        lines += self._summary()
        for part in (
            self._coldstart,
            self._peers,
            self._http,
            self._pipeline,
            self._cost,
            self._scale,
        ):
            lines += part()
        return "\n".join(_numbered(lines)) + "\n"

    # ------------------------------------------------------------------- targets
    def _summary(self) -> list[str]:
        rows: list[str] = []
        for part in (self._p1, self._p2, self._p3, self._p4, self._p5):
            rows += part()
        if not rows:
            return []
        return [
            "## Targets",
            "",
            "| target | measured | | what the gap is, when missed |",
            "|---|---|---|---|",
            *rows,
            "",
        ]

    def _p1(self) -> list[str]:
        c = self.coldstart
        if c is None:
            return []
        h = c.heaviest()
        r = c.ratio(h)
        gap = "" if r <= TARGET_COLD else (
            f"{_ms(c.median(h) - TARGET_COLD * c.median('boto3'))} ms over "
            f"{TARGET_COLD}× boto3 ({r / TARGET_COLD:.2f}× the target); see the cold start table. "
            "On AWS, SnapStart (on in template.yaml) replaces this start with a restore from a "
            "snapshot taken after it, which cannot be measured here"
        )  # fmt: skip
        ready = ""
        if "ready_ms" in c.samples[h][0]:
            ready = (
                f"; to ready (what Lambda's init counts, no interpreter exit): "
                f"{c.ratio(h, 'ready_ms'):.2f}× ({_ms(c.median(h, 'ready_ms'))} ms vs "
                f"{_ms(c.median('boto3', 'ready_ms'))} ms)"
            )
        return [
            f"| P1 cold start of what ships: heaviest function ≤ {TARGET_COLD}× `import boto3` "
            f"(wall) | {h}: {r:.2f}× ({_ms(c.median(h))} ms vs "
            f"{_ms(c.median('boto3'))} ms){ready} | {_ok(r <= TARGET_COLD)} | {gap} |",
            *self._p1_tracing(),
        ]

    def _p1_tracing(self) -> list[str]:
        from bench import otel
        from bench.coldstart import traced

        c = self.coldstart
        if not getattr(c, "traced", None):
            return []
        cells, misses = [], []
        for f in c.traced:
            on, off, default = traced(f, "otlp"), traced(f, "off"), traced(f, "xray")
            cpu = c.difference(on, off, "ready_cpu_ms")
            cells.append(
                f"{f}: {cpu:+.0f} ms of CPU to ready (wall to ready {c.difference(on, off):+.0f} "
                f"ms; against the default, xray: {c.difference(on, default, 'ready_cpu_ms'):+.0f}"
                " ms of CPU)"
            )
            if cpu > TARGET_TRACING_MS:
                misses.append(f"{f} {cpu - TARGET_TRACING_MS:.0f} ms over")
        return [
            f"| P1 tracing on costs a cold start ≤ {TARGET_TRACING_MS:.0f} ms: TracingMode=otlp "
            f"at {float(otel.RATIO):.0%} over TracingMode=off, the start's CPU time to ready "
            "(its own work, which background load on a shared machine does not stretch as it "
            "does wall time; round by round, then the median) | "
            + "; ".join(cells)
            + f" | {_ok(not misses)} | "
            + "; ".join(misses)
            + " |"
        ]

    def _p2(self) -> list[str]:
        from bench.peers import FASTAPI, KNATIVE

        p = self.peers
        if p is None or not any(p.has(KNATIVE, c) and p.has(FASTAPI, c) for c in p.concurrencies):
            return []
        cells, misses = [], []
        for c in p.concurrencies:
            if not (p.has(KNATIVE, c) and p.has(FASTAPI, c)):
                continue
            rps = p.ratio(KNATIVE, FASTAPI, c)
            k99, f99 = p.figure(KNATIVE, c, "p99"), p.figure(FASTAPI, c, "p99")
            kcpu, fcpu = p.cpu(KNATIVE, c), p.cpu(FASTAPI, c)
            cells.append(
                f"c={c}: {rps:.2f}× req/s, p99 {k99:.1f} vs {f99:.1f} ms, CPU {kcpu:.2f} vs "
                f"{fcpu:.2f} ms/hit"
            )
            if rps < 1:
                misses.append(f"req/s {rps:.2f}× at c={c}")
            if k99 > f99:
                misses.append(f"p99 {k99 / f99:.2f}× at c={c}")
            if kcpu > fcpu:
                misses.append(f"CPU per hit {kcpu / fcpu:.2f}× at c={c}")
            if not (p.ok(KNATIVE, c) and p.ok(FASTAPI, c)):
                misses.append(f"wrong answers at c={c}")
        rows = [
            "| P2 Knative path GetProduct hits at concurrency 1, 8 and 32: req/s ≥ FastAPI/"
            "uvicorn's, p99 ≤ its p99, CPU per hit ≤ its own | "
            + "; ".join(cells)
            + f" | {_ok(not misses)} | {'; '.join(misses)} |"
        ]
        if KNATIVE in p.pss_mib and FASTAPI in p.pss_mib:
            ratio = p.pss_mib[KNATIVE] / p.pss_mib[FASTAPI]
            rows.append(
                f"| P2 memory per pod: PSS ≤ 1.2× a FastAPI/uvicorn app's | "
                f"{p.pss_mib[KNATIVE]:.0f} vs {p.pss_mib[FASTAPI]:.0f} MiB ({ratio:.2f}×) | "
                f"{_ok(ratio <= 1.2)} | "
                + (
                    ""
                    if ratio <= 1.2
                    else f"{p.pss_mib[KNATIVE] - 1.2 * p.pss_mib[FASTAPI]:.0f} MiB over"
                )
                + " |"
            )
        image = getattr(self.coldstart, "image", None)
        peer = getattr(self.coldstart, "peer_image", None)
        if image is not None and peer is not None:
            ratio = image.median() / peer.median()
            rows.append(
                "| P2 the image's command to first answer ≤ 1.2× a FastAPI/uvicorn app's | "
                f"{_ms(image.median())} vs {_ms(peer.median())} ms ({ratio:.2f}×) | "
                f"{_ok(ratio <= 1.2)} | |"
            )
        return rows

    def _p3(self) -> list[str]:
        p = self.pipeline
        if p is None:
            return []
        rows = []
        for s in p.scenarios:
            r = p.ratio(s.name)
            once = p.exactly_once(s.name, "funcmart") and p.exactly_once(s.name, "celery")
            fm, ce = p.cpu_ms(s.name, "funcmart"), p.cpu_ms(s.name, "celery")
            cpu = fm["worker"] / ce["worker"] if ce.get("worker") else float("nan")
            met = r >= TARGET_PIPELINE and once and cpu <= TARGET_PIPELINE_CPU
            gap = []
            if r < TARGET_PIPELINE:
                gap.append(f"orders/s {r / TARGET_PIPELINE:.2f}× the target")
            if cpu > TARGET_PIPELINE_CPU:
                gap.append(f"worker CPU {cpu / TARGET_PIPELINE_CPU:.2f}× the target")
            if r < TARGET_PIPELINE and fm and ce:
                # Every process shares the same cores: where funcmart's CPU per order goes over.
                over = {k: fm.get(k, 0.0) - ce.get(k, 0.0) for k in fm.keys() | ce.keys()}
                most = max(over, key=lambda k: over[k])
                gap.append(
                    f"CPU per order over every process {sum(fm.values()):.1f} vs "
                    f"{sum(ce.values()):.1f} ms on the same cores, the most of it in {most} "
                    f"({fm.get(most, 0.0):.1f} vs {ce.get(most, 0.0):.1f} ms)"
                )
            if not once:
                gap.append("exactly-once broken (see the pipeline section)")
            rows.append(
                f"| P3 pipeline, {s.name}: orders/s ≥ {TARGET_PIPELINE:.0f}× the best-tuned "
                f"Celery, exactly once, worker CPU per order ≤ {TARGET_PIPELINE_CPU}× Celery's | "
                f"{p.rate(s.name, 'funcmart'):.1f} ({p.best(s.name, 'funcmart').label}) vs "
                f"{p.rate(s.name, 'celery'):.1f} ({p.best(s.name, 'celery').label}) orders/s = "
                f"{r:.2f}×; exactly once: {'yes' if once else 'NO'}; worker CPU "
                f"{fm.get('worker', 0):.1f} vs {ce.get('worker', 0):.1f} ms/order = {cpu:.2f}× "
                f"| {_ok(met)} | {'; '.join(gap)} |"
            )
        rows += self._p3_knative()
        return rows

    def _p3_knative(self) -> list[str]:
        k, p = self.knative_consumer, self.pipeline
        if k is None or p is None or not k.cpu_ms:
            return []
        instant = p.scenarios[0].name
        celery = p.cpu_ms(instant, "celery").get("worker")
        if not celery:
            return []
        ratio = k.cpu() / celery
        met = ratio <= TARGET_PIPELINE_CPU and k.exactly_once
        return [
            f"| P3 consumer CPU per order on the Knative path (the broker's CloudEvent push into "
            f"the Knative host, {instant}) ≤ {TARGET_PIPELINE_CPU}× Celery's worker CPU per "
            f"order | {k.cpu():.2f} vs {celery:.2f} ms/order ({ratio:.2f}×), {k.orders} orders "
            f"× {len(k.cpu_ms)} repeats at {k.concurrency} deliveries at once; exactly once: "
            f"{'yes' if k.exactly_once else 'NO'} | {_ok(met)} | "
            + ("" if met else f"{ratio / TARGET_PIPELINE_CPU:.2f}× the target; {k.detail}")
            + self._use_case_note(k.use_case(), celery)
            + " |"
        ]

    @staticmethod
    def _use_case_note(alone: float, celery: float) -> str:
        """What ProcessOrder's use case alone costs, beside the target it is a part of."""
        if not alone:
            return ""
        target = TARGET_PIPELINE_CPU * celery
        over = "over" if alone > target else "within"
        return (
            f"; the use case alone (`process_order` in one process, no host or queue: what "
            f"Celery's task runs too) takes {alone:.2f} ms/order, {over} the target's "
            f"{target:.2f} by itself"
        )

    def _p4(self) -> list[str]:
        c = self.cost
        if c is None:
            return []
        from bench.capacity import LIFECYCLE, lifecycle_floor

        billed = sum(r["billed"] for r in c.rows() if r["step"] in LIFECYCLE and r["counted"])
        floor = sum(f.units for f in lifecycle_floor(c))
        gap = "" if billed <= floor else (
            f"{billed - floor:g} units over the floor ({billed / floor:.2f}×); the DynamoDB "
            "cost section lists where"
        )  # fmt: skip
        return [
            "| P4 billed capacity units per order lifecycle (one line; table, as AWS bills) = "
            f"the floor | {billed:g} billed vs floor {floor:g} | {_ok(billed <= floor)} "
            f"| {gap} |"
        ]

    def _p5(self) -> list[str]:
        sc = self.scale
        if sc is None:
            return []
        from bench.scale import ORDERS

        rows = []
        for name in ("ListProducts (category)", "GetProduct miss", ORDERS):
            sizes = sc.sizes_of(name)
            if (name, sizes[0], sc.concurrencies[0]) not in sc.runs:
                continue
            growths = {c: sc.growth(name, c) for c in sc.concurrencies}
            met = all(g <= TARGET_SCALE for g in growths.values())
            worst = max(growths.values())
            gap = "" if met else f"{worst / TARGET_SCALE:.2f}× the target"
            unit = "orders" if name == ORDERS else "products"
            rows.append(
                f"| P5 {name}: p50 at {sizes[-1]:,} ≤ {TARGET_SCALE}× p50 at {sizes[0]:,} "
                f"{unit} | "
                + ", ".join(f"concurrency {c}: {g:.2f}×" for c, g in growths.items())
                + f" | {_ok(met)} | {gap} |"
            )
        return rows

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
            f"counted). Beside it, a bare `import boto3` in the same rounds: **{_ms(base)} ms**. "
            "Figures are whole-process wall time (interpreter start-up to exit, as the parent "
            "sees it); *in-process* is the import and bootstrap alone. The ratio is taken round "
            "by round, then the median. Every target runs once per round, in a shuffled order.",
            "",
        ]
        if pkg is not None:
            lines += [f"Package measured: {pkg.how}. Bytecode: {pkg.bytecode}.", ""]
            if pkg.files_bytes:
                lines += [
                    f"Size of the function package and the layer: "
                    f"**{pkg.files_bytes / 2**20:.1f} MiB** unpacked (Lambda's limit: 250 MiB).",
                    "",
                ]
        return (
            lines
            + self._coldstart_table(c)
            + self._coldstart_instructions(c)
            + self._coldstart_tracing(c)
            + self._coldstart_image(c)
        )

    @staticmethod
    def _coldstart_instructions(c: Any) -> list[str]:
        counts = getattr(c, "instructions", None)
        if not counts or "boto3" not in counts:
            return []
        base = counts["boto3"]
        before = c.before
        lines = [
            "Instructions each cold start runs from its start to ready, counted once under "
            "valgrind's callgrind (the same process, ended where the function is ready): a "
            "count the machine's load does not move, but blind to time spent waiting (the "
            f"disk, page faults). `import boto3`: **{base / 1e6:,.0f} million**.",
            "",
            "| function | instructions to ready (millions) | × boto3 |"
            + (f" before ({before}) | before × boto3 |" if before else ""),
            "|---|---:|---:|" + ("---:|---:|" if before else ""),
        ]
        for f in sorted(c.functions(), key=lambda t: counts.get(t, 0), reverse=True):
            if f not in counts:
                continue
            line = f"| {f} | {counts[f] / 1e6:,.0f} | {counts[f] / base:.2f} |"
            old = counts.get(f"{f} @ {before}") if before else None
            if old:
                line += f" {old / 1e6:,.0f} | {old / base:.2f} |"
            lines.append(line)
        return [*lines, ""]

    @staticmethod
    def _coldstart_tracing(c: Any) -> list[str]:
        from bench import otel
        from bench.coldstart import TRACING_MODES, traced

        if not getattr(c, "traced", None):
            return []
        ratio = float(otel.RATIO)
        what = {
            "xray": "xray (the default: the rows above)",
            "off": "off",
            "otlp": f"otlp, {ratio:.0%} sampled",
        }
        lines = [
            f"Tracing: {' and '.join(c.traced)} as the template deploys them with each "
            "TracingMode, every mode of each once per round in a shuffled order, "
            f"{c.tracing_rounds} rounds of their own: `xray` (the Powertools X-Ray tracer), "
            "`off` (nothing imported), `otlp` (OpenTelemetry's SDK, OTEL_TRACES_SAMPLER="
            f"{otel.SAMPLER}, OTEL_TRACES_SAMPLER_ARG={otel.RATIO}; sys.path with "
            f"{c.tracing_layer}). With `otlp` the probe also installs the tracer provider "
            "the first invocation installs before its first span. *CPU to ready* is the "
            "process's user plus system time from its start until the function is ready. "
            "*Over off* is the difference to `off` in the same round, then the median.",
            "",
            "| function | TracingMode | to ready (ms) | over off | CPU to ready (ms) | over off "
            "| CPU, start to exit (ms) | in-process (ms) | modules loaded |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for f in c.traced:
            off = traced(f, "off")
            for mode in TRACING_MODES:
                t = traced(f, mode)
                ready_over = cpu_over = ""
                if mode != "off":
                    ready_over = f"{c.difference(t, off):+.0f}"
                    cpu_over = f"{c.difference(t, off, 'ready_cpu_ms'):+.0f}"
                lines.append(
                    f"| {f} | {what[mode]} | {_ms(c.median(t, 'ready_ms'))} | {ready_over} "
                    f"| {_ms(c.median(t, 'ready_cpu_ms'))} | {cpu_over} "
                    f"| {_ms(c.median(t, 'cpu_ms'))} | {_ms(c.median(t, 'total_ms'))} "
                    f"| {c.median(t, 'modules'):.0f} |"
                )
        lines.append("")
        return lines

    @staticmethod
    def _coldstart_table(c: Any) -> list[str]:
        lines: list[str] = []
        split = "ready_ms" in c.samples["boto3"][0]
        if split:
            lines += [
                "*To ready* is the same wall time up to the moment the function is ready (what "
                "Lambda's Init Duration counts); *exit* is the rest: the interpreter's "
                "finalisation (atexit handlers, then the collector walking and freeing every "
                "object the imports made), which a Lambda execution environment never runs. "
                "*CPU* is the process's user plus system time, start to exit: background load "
                "disturbs it far less than wall time.",
                "",
            ]
        before = c.before
        head = "| function | wall (ms) | × boto3 |"
        rule = "|---|---:|---:|"
        if split:
            head += " to ready (ms) | ready × boto3 | exit (ms) | CPU (ms) |"
            rule += "---:|---:|---:|---:|"
        head += " in-process (ms) | modules loaded |"
        rule += "---:|---:|"
        if before:
            head += f" before ({before}) ms | before × boto3 |"
            rule += "---:|---:|"
            if split:
                head += " before: ready × boto3 | before: CPU (ms) |"
                rule += "---:|---:|"
        lines += [head, rule]

        def row(name: str, target: str) -> str:
            cells = f"| {name} | {_ms(c.median(target))} | {c.ratio(target):.2f} |"
            if split:
                cells += (
                    f" {_ms(c.median(target, 'ready_ms'))} | {c.ratio(target, 'ready_ms'):.2f} "
                    f"| {_ms(c.median(target, 'exit_ms'))} | {_ms(c.median(target, 'cpu_ms'))} |"
                )
            return (
                cells + f" {_ms(c.median(target, 'total_ms'))} | "
                f"{c.median(target, 'modules'):.0f} |"
            )

        lines.append(row("`import boto3`", "boto3"))
        for f in sorted(c.functions(), key=c.median, reverse=True):
            line = row(f, f)
            key = f"{f} @ {before}"
            if before and key in c.samples:
                line += f" {_ms(c.median(key))} | {c.ratio(key):.2f} |"
                if split:
                    line += f" {c.ratio(key, 'ready_ms'):.2f} | {_ms(c.median(key, 'cpu_ms'))} |"
            lines.append(line)
        lines.append("")
        return lines

    @staticmethod
    def _coldstart_image(c: Any) -> list[str]:
        image = getattr(c, "image", None)
        if image is None:
            return []
        lines = [
            f"The container image (Knative), Service `{image.service}`: the image's command "
            f"(`python -m funcmart_hosts.knative`: one process, uvicorn, the host and the "
            f"function) from its start to its first answer on its port "
            f"(GET /healthz), median over {len(image.first_answer_ms)} starts: "
            f"**{_ms(image.median())} ms** (CPU until stopped: "
            f"{_ms(image.median('cpu_ms'))} ms). Layout: {image.layout.how}. Bytecode: "
            f"{image.layout.bytecode}.",
            "",
        ]
        peer = getattr(c, "peer_image", None)
        if peer is not None:
            lines += [
                "Beside it, in the same rounds, FastAPI's peer app "
                "(`uvicorn bench.peer_apps.fastapi_app:app`, its first answer on a route that "
                f"needs no Redis): **{_ms(peer.median())} ms** (CPU {_ms(peer.median('cpu_ms'))} "
                "ms).",
                "",
            ]
        return lines

    def _peers(self) -> list[str]:
        from bench.peers import FASTAPI, KNATIVE, KNATIVE_BEFORE, LABELS

        p = self.peers
        if p is None:
            return []
        lines = [
            "## 2. GetProduct cache hits: funcmart beside FastAPI and Flask",
            "",
            "The same work on every server: GetProduct's rate-limit script (which also reads "
            "the product's cache entry: one Redis call) and the product as JSON with "
            "`X-Cache: HIT` and the RateLimit headers; FastAPI answers through its response "
            "model (`response_model=ProductOut`, validated and serialized by FastAPI), Flask "
            "with `jsonify`. Same machine, same Redis, same load generator (asyncio on uvloop, "
            "keep-alive, one connection per concurrent caller, its own process). "
            f"Each cell runs {p.seconds:.0f} s after a warm-up; every answer is checked "
            "(status 200, `X-Cache: HIT`, the product's id in the body) and one wrong answer "
            f"fails the cell. Median of {p.repeats} repeats; latencies in ms; *samples* is how "
            "many answers the percentiles come from (over all repeats).",
            "",
            "How each was run: "
            + "; ".join(f"{LABELS[s]}: {p.notes.get(s, '')}" for s in p.systems())
            + ".",
            "",
            "| server | concurrency | req/s | × FastAPI | p50 | p99 | CPU ms/hit | samples | "
            "answers |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in p.concurrencies:
            for s in p.systems():
                if not p.has(s, c):
                    continue
                vs = f"{p.ratio(s, FASTAPI, c):.2f}" if p.has(FASTAPI, c) else ""
                lines.append(
                    f"| {LABELS[s]} | {c} | {p.figure(s, c, 'rps'):.0f} | {vs} | "
                    f"{p.figure(s, c, 'p50'):.2f} | {p.figure(s, c, 'p99'):.2f} | "
                    f"{p.cpu(s, c):.2f} | "
                    f"{p.samples(s, c):,} | {'all right' if p.ok(s, c) else 'WRONG'} |"
                )
        failed = [f"{LABELS[c.system]} at {c.concurrency}: {w}" for c, w in p.failures.items()]
        if failed:
            lines += ["", "First wrong answer per failed cell: " + "; ".join(failed) + "."]
        if p.has(KNATIVE_BEFORE, 8) and p.has(KNATIVE, 8):
            lines += [
                "",
                "Before and after the ASGI host (concurrency 8, same repeats): "
                f"{p.figure(KNATIVE_BEFORE, 8, 'rps'):.0f} → {p.figure(KNATIVE, 8, 'rps'):.0f} "
                f"req/s ({p.ratio(KNATIVE, KNATIVE_BEFORE, 8):.2f}×), p99 "
                f"{p.figure(KNATIVE_BEFORE, 8, 'p99'):.2f} → {p.figure(KNATIVE, 8, 'p99'):.2f} ms, "
                f"CPU {p.cpu(KNATIVE_BEFORE, 8):.2f} → {p.cpu(KNATIVE, 8):.2f} ms per hit.",
            ]
        lines += self._tracing_cost(p)
        if p.pss_mib:
            lines += [
                "",
                "Memory after the last cell (PSS of each server's process tree, MiB: what a pod "
                "holds): " + ", ".join(f"{LABELS[s]} {v:.0f}" for s, v in p.pss_mib.items()) + ".",
            ]
            if p.pss_after_miss_mib is not None:
                lines[-1] += (
                    " The peers serve cache hits only (the local gateway filled the cache), so "
                    "these are hit-only servers; the Knative host after it has also served one "
                    f"miss (its DynamoDB client built, as a real pod's is): "
                    f"{p.pss_after_miss_mib:.0f} MiB."
                )
        lines += self._profile(p)
        lines.append("")
        return lines

    @staticmethod
    def _tracing_cost(p: Any) -> list[str]:
        """Tracing off beside tracing not installed, and on beside off, cell by cell."""
        from bench import otel
        from bench.peers import KNATIVE, KNATIVE_OTEL_OFF, KNATIVE_TRACED

        ratio = float(otel.RATIO)
        pairs = (
            ("off, OpenTelemetry installed / not installed", KNATIVE_OTEL_OFF, KNATIVE),
            (f"on at {ratio:.0%} / off, OpenTelemetry installed", KNATIVE_TRACED, KNATIVE_OTEL_OFF),
            (f"on at {ratio:.0%} / not installed", KNATIVE_TRACED, KNATIVE),
        )
        rows = [
            f"| {c} | {label} | {p.ratio(a, b, c):.2f}× | {p.figure(b, c, 'p50'):.2f} → "
            f"{p.figure(a, c, 'p50'):.2f} | {p.figure(b, c, 'p99'):.2f} → "
            f"{p.figure(a, c, 'p99'):.2f} ({p.ratio(a, b, c, 'p99'):.2f}×) | {p.cpu(b, c):.2f} → "
            f"{p.cpu(a, c):.2f} ({p.cpu_ratio(a, b, c):.2f}×) |"
            for c in p.concurrencies
            for label, a, b in pairs
            if p.has(a, c) and p.has(b, c)
        ]
        if not rows:
            return []
        lines = [
            "",
            "Tracing on this path, from the rows above: with tracing off an image that carries "
            "OpenTelemetry must serve as the default image does, and tracing on at "
            f"{ratio:.0%} costs what this says. Each ratio is taken within a repeat (both "
            "measured in it), then the median; latencies and CPU are the medians above, "
            "*before → after*.",
            "",
            "| concurrency | comparison | req/s | p50 (ms) | p99 (ms) | CPU ms/hit |",
            "|---:|---|---:|---:|---:|---:|",
            *rows,
        ]
        answered = p.answered.get(KNATIVE_TRACED, 0)
        got = p.exported
        if got is not None and answered:
            spans = got.get("spans", 0)
            lines += [
                "",
                f"The traced server answered {answered:,} requests (warm-ups included); the "
                f"sink received {spans:,} spans in {got.get('requests', 0):,} exports "
                f"({got.get('bytes', 0) / 2**20:.1f} MiB of OTLP JSON"
                + (f", {got['undecodable']} undecodable" if got.get("undecodable") else "")
                + f"): {100 * spans / answered:.1f} spans per 100 requests, that is about "
                f"{spans / 2 / answered:.1%} of the requests sampled at two spans per sampled "
                "hit (the request's server span and its Redis call's).",
            ]
        return lines

    @staticmethod
    def _profile(p: Any) -> list[str]:
        from bench import otel

        out = Report._one_profile(getattr(p, "profile", None), "the Knative host's CPU")
        traced = f"the Knative host's CPU with tracing on at {float(otel.RATIO):.0%}"
        return out + Report._one_profile(getattr(p, "traced_profile", None), traced)

    @staticmethod
    def _one_profile(prof: Any, whose: str) -> list[str]:
        if prof is None:
            return []
        if prof.error:
            return ["", f"Profile under load of {whose}: not taken ({prof.error})."]
        rows = [f"| {name} | {share * 100:.1f}% |" for name, share in prof.layers]
        return [
            "",
            f"Where {whose} goes at concurrency {prof.concurrency}: py-spy "
            f"sampling the running server for {prof.seconds:.0f} s under the same load "
            f"(`{prof.command}`), {prof.samples:,} GIL-holding samples, each charged to the "
            "layer of its innermost frame that belongs to one (bench/profile.py):",
            "",
            "| layer | share of samples |",
            "|---|---:|",
            *rows,
        ]

    def _http(self) -> list[str]:
        h = self.http
        if h is None:
            return []
        lines = [
            "## 3. HTTP through the local gateway, every kind of request",
            "",
            "One gateway process serving every route plus an empty function (the ceiling); the "
            "load generator is a separate process. DynamoDB Local, Redis and moto's SQS run on "
            f"the same machine. Median of {h.repeats} repeats; latencies in ms.",
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
        ]
        return lines

    def _pipeline(self) -> list[str]:
        p = self.pipeline
        if p is None:
            return []
        cpus = ",".join(map(str, p.worker_cpus))
        lines = [
            "## 4. Pipeline throughput (OrderPlaced to PAID), Celery at its best",
            "",
            "funcmart: the local platform's queue pollers hand ProcessOrder batches from SQS "
            "(moto, its own process), several batches at once (pollers) and the records of a "
            "batch concurrently (batch concurrency); Celery 5 "
            "(acks late, Redis broker, prefetch multiplier 1 when the gateway is slow and 16 "
            "when it answers at once, as Celery's guide to optimizing advises) runs the same "
            "`services.orders.process_order` over the same adapters, DynamoDB Local and Redis. "
            f"Each worker is one process (Celery's prefork children included) pinned to CPU "
            f"{cpus}; the services are not. "
            + (
                f"DynamoDB Local is warmed first by an unmeasured run of {p.warm_orders} orders. "
                if p.warm_orders
                else "DynamoDB Local is not warmed first. "
            )
            + "Both sides are swept over the same range, the two taking turns; "
            + (
                f"the best setting of each then runs {p.repeats} more times, alternating "
                "which side goes first, and those runs give the figures and the ratio (within "
                "a repeat, then the median). "
                if p.repeats
                else "the best setting's sweep run gives the figures. "
            )
            + "Orders are fed in a closed loop; the finish line is OrderPaid taken off "
            "its queue for every order (distinct order ids); afterwards each order must be "
            "PAID and its `PAYSIM#<orderId>/CHARGE` item must show `captures = 1`.",
            "",
            "| scenario | funcmart best | orders/s | Celery best | orders/s | funcmart / Celery "
            "| exactly once (funcmart, Celery) |",
            "|---|---|---:|---|---:|---:|---|",
        ]
        for s in p.scenarios:
            once = ", ".join(
                "yes" if p.exactly_once(s.name, x) else "NO" for x in ("funcmart", "celery")
            )
            lines.append(
                f"| {s.name} | {p.best(s.name, 'funcmart').label} | "
                f"{p.rate(s.name, 'funcmart'):.1f} | {p.best(s.name, 'celery').label} | "
                f"{p.rate(s.name, 'celery'):.1f} | {p.ratio(s.name):.2f} | {once} |"
            )
        lines += ["", "The sweep (one run per setting; orders/s):", ""]
        lines += ["| scenario | system | setting | orders | orders/s | exactly once |"]
        lines += ["|---|---|---|---:|---:|---|"]
        for s in p.scenarios:
            for x in ("celery", "funcmart"):
                for r in p.curve(s.name, x):
                    lines.append(
                        f"| {s.name} | {x} | {r.config.label} | {r.orders} | {r.rate:.1f} | "
                        f"{'yes' if r.exactly_once else 'NO: ' + r.detail} |"
                    )
        lines += ["", "CPU per order (ms), by process, the best settings' runs (median):", ""]
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
        ]
        return lines

    def _cost(self) -> list[str]:
        c = self.cost
        if c is None:
            return []
        from bench.capacity import LIFECYCLE, lifecycle_floor

        rows = c.rows()
        lines = [
            "## 5. DynamoDB cost per operation and per order",
            "",
            "*Billed*: the capacity units DynamoDB bills the table for the call, computed from "
            "the call and the sizes of its items (reads: 4 KB per unit, 0.5 eventually / 1 "
            "strongly consistent, 2 in a transaction; writes: 1 KB per unit of the larger of "
            "the item before and after, 2 in a transaction). *Reported*: what DynamoDB Local "
            "answers (`ReturnConsumedCapacity=INDEXES`); *index*: what it reports for the "
            "GSIs on writes (projection ALL), on top of the table.",
            "",
            "| step | operation | items written | bytes | billed | reported | index | |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            note = "" if r["counted"] else "payment simulator (stands for a card network)"
            if r["counted"] and r["table"] + 1e-9 < r["billed"]:
                note = "DynamoDB Local reports less than AWS bills"
            lines.append(
                f"| {r['step']} | {r['operation']} ({r['kind']}) | {r['keys']} | {r['bytes']} | "
                f"{r['billed']:g} | {r['table']:g} | {r['indexes']:g} | {note} |"
            )
        life = [r for r in rows if r["step"] in LIFECYCLE and r["counted"]]
        floor = lifecycle_floor(c)
        lines += ["", "One order's lifecycle (one line; place → paid → fulfilled):", ""]
        lines += ["| step | billed read | billed write | floor read | floor write |"]
        lines += ["|---|---:|---:|---:|---:|"]
        for step in LIFECYCLE:
            mine = [r for r in life if r["step"] == step]
            fl = [f for f in floor if f.step == step]
            lines.append(
                f"| {step} | {sum(r['billed'] for r in mine if r['kind'] == 'read'):g} | "
                f"{sum(r['billed'] for r in mine if r['kind'] == 'write'):g} | "
                f"{sum(f.units for f in fl if f.kind == 'read'):g} | "
                f"{sum(f.units for f in fl if f.kind == 'write'):g} |"
            )
        total = sum(r["billed"] for r in life)
        total_floor = sum(f.units for f in floor)
        index = sum(r["indexes"] for r in life)
        lines += [
            "",
            f"Billed: **{total:g} units** on the table per order (plus {index:g} index units "
            f"as DynamoDB Local reports them); floor: **{total_floor:g}**. The floor, line by "
            "line (`bench/capacity.py`, `lifecycle_floor`, says why each is needed):",
            "",
        ]
        lines += [f"- {f.step}: {f.what}: {f.units:g}" for f in floor]
        lines.append("")
        return lines

    def _scale(self) -> list[str]:
        sc = self.scale
        if sc is None:
            return []
        from bench.scale import SCENARIOS

        lines = [
            f"## 6. Scale: {sc.sizes[0]:,} to {sc.sizes[-1]:,} products, "
            f"{sc.order_sizes[0]:,} to {sc.order_sizes[-1]:,} orders of a customer",
            "",
            "Every size exists at once: a table per catalog size, each with its own gateway, "
            "and in the largest table one customer per order count, all written straight with "
            "BatchWriteItem ("
            + ", ".join(f"{n} in {s:.0f} s" for n, s in sc.load_seconds.items())
            + "). Each round measures every size of a scenario back to back at concurrency "
            + " and ".join(map(str, sc.concurrencies))
            + ", in alternating order from round to round; GetProduct asks for distinct "
            "products after the cache is emptied, and every answer must be a miss. Figures "
            f"are the median of {sc.repeats} rounds; ms.",
            "",
            "| scenario | size | concurrency | p50 | p95 | p99 | req/s |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in SCENARIOS:
            for n in sc.sizes_of(name):
                for c in sc.concurrencies:
                    if (name, n, c) not in sc.runs:
                        continue
                    lines.append(
                        f"| {name} | {n:,} | {c} | {sc.figure(name, n, 'p50', c):.2f} | "
                        f"{sc.figure(name, n, 'p95', c):.2f} | {sc.figure(name, n, 'p99', c):.2f} "
                        f"| {sc.figure(name, n, 'rps', c):.0f} |"
                    )
        lines += [
            "",
            "p50 at the largest size over the smallest (within a round, then the median; in "
            "brackets the lowest and highest round): "
            + ", ".join(
                f"{name} at concurrency {c} {sc.growth(name, c):.2f}× "
                f"({min(sc.ratios(name, c)):.2f}–{max(sc.ratios(name, c)):.2f})"
                for name in SCENARIOS
                for c in sc.concurrencies
                if (name, sc.sizes_of(name)[0], c) in sc.runs
            )
            + ".",
            "",
        ]
        return lines

    # ---------------------------------------------------------------------- plot
    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 2, figsize=(13, 9))
        self._plot_coldstart(axes[0][0])
        self._plot_peers(axes[0][1])
        self._plot_pipeline(axes[1][0])
        self._plot_scale(axes[1][1])
        m = machine()
        fig.suptitle(f"funcmart benchmarks ({m.cores} cores, Python {m.python})")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)

    def _plot_coldstart(self, ax: Any) -> None:
        ax.set_title("Cold start")
        c = self.coldstart
        if c is None:
            return
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
        ax.set_xlabel("cold start, whole process, ms (median)")
        ax.legend(fontsize=8)

    def _plot_peers(self, ax: Any) -> None:
        from bench.peers import LABELS

        ax.set_title("GetProduct cache hits: funcmart and its peers")
        p = self.peers
        if p is None:
            return
        systems = p.systems()
        width = 0.8 / max(1, len(systems))
        for i, s in enumerate(systems):
            xs = [j + i * width for j, c in enumerate(p.concurrencies) if p.has(s, c)]
            ys = [p.figure(s, c, "rps") for c in p.concurrencies if p.has(s, c)]
            ax.bar(xs, ys, width, label=LABELS[s])
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(p.concurrencies))])
        ax.set_xticklabels([f"concurrency {c}" for c in p.concurrencies], fontsize=8)
        ax.set_ylabel("requests/s (median)")
        ax.legend(fontsize=7)

    def _plot_pipeline(self, ax: Any) -> None:
        ax.set_title("Pipeline sweep: orders/s by concurrency (same worker core)")
        p = self.pipeline
        if p is None:
            return
        for s in p.scenarios:
            for x, pool in (("celery", "prefork"), ("celery", "threads"), ("funcmart", "batch")):
                runs = sorted(
                    (r for r in p.curve(s.name, x) if r.config.pool == pool),
                    key=lambda r: r.config.units,
                )
                if runs:
                    ax.plot(
                        [r.config.units for r in runs],
                        [r.rate for r in runs],
                        marker="o",
                        label=f"{x} {pool}, {s.name}",
                    )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("orders in progress at once (Celery: concurrency)")
        ax.set_ylabel("orders/s")
        ax.legend(fontsize=7)

    def _plot_scale(self, ax: Any) -> None:
        ax.set_title("Scale")
        sc = self.scale
        if sc is None:
            return
        from bench.scale import SCENARIOS

        for name in SCENARIOS:
            for c in sc.concurrencies:
                sizes = [n for n in sc.sizes_of(name) if (name, n, c) in sc.runs]
                if sizes:
                    ax.plot(
                        sizes,
                        [sc.p50(name, n, c) for n in sizes],
                        marker="o",
                        label=f"{name}, concurrency {c}",
                    )
        ax.set_xscale("log")
        ax.set_xlabel("products (or orders of the customer) in the table")
        ax.set_ylabel("p50 latency, ms")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
