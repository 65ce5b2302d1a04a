"""A Knative-shaped run on 127.0.0.1, built from `kubectl kustomize infra` and nothing else:

- every Knative Service runs as its container runs: the Dockerfile's CMD, one process per
  replica, the environment its manifest gives it (its `env`, the ConfigMap and the Secret of
  its `envFrom`, K_SINK where the SinkBinding selects it) plus what Knative injects (PORT,
  K_SERVICE, K_CONFIGURATION, K_REVISION). Only what a pod's own network namespace or the
  cluster provides is replaced: the bind address, the metrics port (every pod has 9464 to
  itself; here they share one host), the DynamoDB endpoint and credentials (IRSA there);
- a small broker delivers CloudEvents as the rendered Triggers say: their attribute filters,
  `retry`, exponential `backoffDelay` (scaled down, and with it what the manifests derive
  from it: HandleDeadLetters' DEAD_LETTER_MIN_AGE_SECONDS), and `deadLetterSink` with
  Knative's error extensions;
- a router sends each request where the rendered HTTPRoutes send it (method + path), with
  the header the rendered HTTPRouteFilter injects (its Secret's credential) and the
  X-Forwarded-For the Gateway, the activator and queue-proxy would have appended.

Every wait is bounded in time; every process is stopped by its pid.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from funcmart_hosts.gateway.template import ROOT
from funcmart_hosts.local import services

# Knative's backoffDelay is ISO-8601; the run scales it down so that retries take milliseconds.
BACKOFF_SCALE = 0.01
# Variables the manifests derive from the Triggers' backoff, in seconds: scaled alike.
FROM_BACKOFF = ("DEAD_LETTER_MIN_AGE_SECONDS",)
Doc = dict[str, Any]


def image_command() -> list[str]:
    """The Dockerfile's CMD (exec form), with the image's python as this interpreter."""
    text = (ROOT / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    argv = [str(a) for a in json.loads(cmd)]
    return [sys.executable if argv[0] in ("python", "python3") else argv[0], *argv[1:]]


def image_app(into: Path) -> Path:
    """/app as the Dockerfile's COPY lines fill it: only what the image holds is importable."""
    app = into / "app"
    app.mkdir(parents=True, exist_ok=True)
    lines = re.findall(r"^COPY\s+(\S+)\s+(\S+)\s*$", (ROOT / "Dockerfile").read_text(), re.M)
    copied = 0
    for src, dest in lines:
        if not dest.startswith("/app"):
            continue
        target = app / dest.removeprefix("/app").lstrip("/")
        for found in sorted(ROOT.glob(src.rstrip("/"))):
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            if found.is_dir():
                shutil.copytree(found, target, dirs_exist_ok=True, ignore=ignore)
            else:
                goal = target / found.name if dest.endswith("/") else target
                goal.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(found, goal)
            copied += 1
    assert copied, "the Dockerfile copies no code into /app"
    return app


def seconds(iso: str) -> float:
    m = re.fullmatch(r"PT(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?", iso)
    assert m, f"unsupported backoffDelay {iso!r}"
    return float(m.group(1) or 0) * 60 + float(m.group(2) or 0)


def by_kind(rendered: list[Doc], kind: str) -> list[Doc]:
    return [d for d in rendered if d["kind"] == kind]


def knative_services(rendered: list[Doc]) -> dict[str, Doc]:
    return {
        d["metadata"]["name"]: d
        for d in rendered
        if d["kind"] == "Service" and d["apiVersion"] == "serving.knative.dev/v1"
    }


def container_env(
    ksvc: Doc,
    rendered: list[Doc],
    secrets: Mapping[str, Mapping[str, str]],
    sink: str | None,
) -> dict[str, str]:
    """The variables Kubernetes and Knative give the container of `ksvc`."""
    (container,) = ksvc["spec"]["template"]["spec"]["containers"]
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind(rendered, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])  # created out of band
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:  # as the kubelet does: an optional key that is absent is unset
            value = secrets.get(ref["name"], {}).get(ref["key"])
            assert value is not None or ref.get("optional"), f"{var['name']}: no such secret"
            if value is not None:
                env[var["name"]] = value
            continue
        assert "value" in var, f"{var['name']}: only literal values or secret keys here"
        env[var["name"]] = str(var["value"])
    name = ksvc["metadata"]["name"]
    env.update(K_SERVICE=name, K_CONFIGURATION=name, K_REVISION=f"{name}-00001")
    for binding in by_kind(rendered, "SinkBinding"):
        selector = binding["spec"]["subject"]["selector"]["matchLabels"]
        if selector.items() <= ksvc["metadata"]["labels"].items():
            assert sink, "a SinkBinding selects this Service: it needs the broker's address"
            env["K_SINK"] = sink
    return env


def scaled(env: dict[str, str]) -> dict[str, str]:
    """`env` with the variables derived from the Triggers' backoff scaled as the run scales
    the backoff (whole seconds, down)."""
    return {
        name: str(int(int(value) * BACKOFF_SCALE)) if name in FROM_BACKOFF else value
        for name, value in env.items()
    }


@dataclass
class Replica:
    service: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


@dataclass
class Delivery:
    subscriber: str
    event_id: str
    event_type: str
    status: int


def retryable(status: int) -> bool:
    """Whether a broker retries a delivery answered with `status`: Knative Eventing's
    data-plane contract (knative/specs, specs/eventing/data-plane.md) retries 404, 409, 429
    and 5xx (503 here also stands for no answer at all), and no other 4xx."""
    return status in (404, 409, 429) or status >= 500


@dataclass
class Broker:
    """The Broker's ingress (K_SINK) and its filter: a Trigger gets each event whose
    attributes equal every one of its filter's; failed deliveries are retried as its
    delivery spec says, then sent to its deadLetterSink."""

    triggers: list[Doc]
    resolve: Any  # service name -> URL
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    # Every event the ingress took, as sent (headers and body): what a pod could capture.
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    pending: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8))

    def accept(self, headers: Mapping[str, str], body: bytes) -> None:
        attributes = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        with self.lock:
            self.received.append((dict(headers), body))
        for trigger in self.triggers:
            wanted = trigger["spec"].get("filter", {}).get("attributes", {})
            if all(attributes.get(k) == v for k, v in wanted.items()):
                with self.lock:
                    self.pending += 1
                self.pool.submit(self._deliver, trigger, dict(headers), body)

    def _deliver(self, trigger: Doc, headers: dict[str, str], body: bytes) -> None:
        try:
            spec = trigger["spec"]
            delivery = spec.get("delivery", {})
            subscriber = spec["subscriber"]["ref"]["name"]
            delay = seconds(delivery.get("backoffDelay", "PT0.2S")) * BACKOFF_SCALE
            status = 0
            for attempt in range(1 + int(delivery.get("retry", 0))):
                if attempt:
                    linear = delivery.get("backoffPolicy") == "linear"
                    time.sleep(delay * (attempt if linear else 2 ** (attempt - 1)))
                status = self._post(subscriber, headers, body)
                if 200 <= status < 300:
                    return
                if not retryable(status):
                    break
            sink = delivery.get("deadLetterSink", {}).get("ref", {}).get("name")
            if sink:
                dead = {
                    **headers,
                    "ce-knativeerrordest": self.resolve(subscriber),
                    "ce-knativeerrorcode": str(status),
                    "ce-knativeerrordata": base64.b64encode(b"delivery failed").decode(),
                }
                self._post(sink, dead, body)
        finally:
            with self.lock:
                self.pending -= 1

    def _post(self, service: str, headers: Mapping[str, str], body: bytes) -> int:
        try:
            answer = httpx.post(
                self.resolve(service), headers=dict(headers), content=body, timeout=60
            )
            status = answer.status_code
        except httpx.HTTPError:
            status = 503
        with self.lock:
            self.deliveries.append(
                Delivery(service, headers.get("ce-id", ""), headers.get("ce-type", ""), status)
            )
        return status

    def idle(self) -> bool:
        with self.lock:
            return self.pending == 0


class IngressServer(ThreadingHTTPServer):
    """The broker's ingress listens as a server built for bursts does (Knative's is a Go
    server: the kernel's whole listen backlog), not with socketserver's five pending
    connections: on two busy cores fifty buyers' publishes filled those five, and the kernel
    dropped the next connections until their publishers timed out."""

    request_queue_size = 1024


@contextlib.contextmanager
def broker_ingress(broker: Broker) -> Iterator[Broker]:
    class Ingress(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            broker.accept({k.lower(): v for k, v in self.headers.items()}, raw)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = IngressServer(("127.0.0.1", 0), Ingress)
    broker.url = f"http://127.0.0.1:{server.server_address[1]}/funcmart/default"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield broker
    finally:
        server.shutdown()
        server.server_close()
        broker.pool.shutdown(wait=True, cancel_futures=True)


def start_replica(
    service: str, env: Mapping[str, str], cluster_env: Mapping[str, str], app: Path
) -> Replica:
    port, metrics_port = services.free_port(), services.free_port()
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(app),  # the image's ENV PYTHONPATH=/app
        "PYTHONUNBUFFERED": "1",
        **env,
        **cluster_env,
        "PORT": str(port),  # Knative's, which the container must not set itself
        "HOST": "127.0.0.1",
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(metrics_port),
    }
    fd, name = tempfile.mkstemp(prefix=f"ksvc-{service}-", suffix=".log")
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.Popen(
            image_command(),
            cwd=app,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Replica(service, f"http://127.0.0.1:{port}", proc, Path(name))


def stop(replica: Replica) -> None:
    if replica.proc.poll() is None:
        os.killpg(replica.proc.pid, signal.SIGTERM)
        try:
            replica.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(replica.proc.pid, signal.SIGKILL)
            replica.proc.wait(10)
    replica.log.unlink(missing_ok=True)


def wait_started(replicas: list[Replica], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for r in replicas:
        port = int(r.url.rsplit(":", 1)[1])
        try:
            services.wait_for_port(port, max(1.0, deadline - time.monotonic()), r.proc)
        except services.ServiceError as exc:
            raise AssertionError(f"{r.service} did not start: {exc}\n{r.output()}") from exc


@dataclass
class Cluster:
    rendered: list[Doc]
    replicas: dict[str, list[Replica]]
    broker: Broker
    # What the Gateway's HTTPRouteFilter injects into every routed request.
    injected: dict[str, str] = field(default_factory=dict)
    _next: dict[str, int] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """The Service's address; round-robin over its replicas, as Knative balances."""
        replicas = self.replicas[service]
        i = self._next.get(service, 0)
        self._next[service] = i + 1
        return replicas[i % len(replicas)].url

    def route(self, method: str, path: str) -> str:
        """The Knative Service the rendered HTTPRoutes send `method path` to, as a client
        reaches them: on the Gateway's HTTPS listener (plain HTTP only redirects)."""
        hits = []
        for route in by_kind(self.rendered, "HTTPRoute"):
            sections = {p.get("sectionName", "https") for p in route["spec"]["parentRefs"]}
            if "https" not in sections:
                continue
            for rule in route["spec"]["rules"]:
                for match in rule["matches"]:
                    p = match["path"]
                    exact = p["type"] == "Exact" and p["value"] == path
                    regex = p["type"] == "RegularExpression" and re.fullmatch(p["value"], path)
                    if (exact or regex) and match.get("method", method) == method:
                        (rewrite,) = [f for f in rule["filters"] if f["type"] == "URLRewrite"]
                        hits.append(rewrite["urlRewrite"]["hostname"].split(".")[0])
        assert len(hits) == 1, f"{method} {path}: routed to {hits}"
        return hits[0]

    def request(self, method: str, target: str, **kwargs: Any) -> httpx.Response:
        path = target.split("?", 1)[0]
        service = self.route(method, path)
        # The client's address as the Gateway appends it, then Kourier's as the activator
        # appends it and the activator's as queue-proxy appends it.
        forwarded = "203.0.113.10, 10.0.0.2, 10.0.0.3"
        headers = {"X-Forwarded-For": forwarded, **kwargs.pop("headers", {}), **self.injected}
        return httpx.request(
            method, self.url(service) + target, headers=headers, timeout=60, **kwargs
        )

    def ping(self, source: str) -> int:
        """What a rendered PingSource sends to its sink on schedule."""
        (ping,) = [
            p for p in by_kind(self.rendered, "PingSource") if p["metadata"]["name"] == source
        ]
        headers = {
            "ce-specversion": "1.0",
            "ce-id": uuid.uuid4().hex,
            "ce-type": "dev.knative.sources.ping",
            "ce-source": f"/apis/v1/namespaces/funcmart/pingsources/{source}",
            "content-type": ping["spec"].get("contentType", "application/json"),
        }
        target = ping["spec"]["sink"]["ref"]["name"]
        return httpx.post(
            self.url(target), headers=headers, content=ping["spec"].get("data", ""), timeout=60
        ).status_code

    def output(self) -> str:
        return "\n".join(
            f"--- {r.service}\n{r.output()}" for rs in self.replicas.values() for r in rs
        )


def injected(rendered: list[Doc], secrets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The headers the rendered HTTPRouteFilters inject (Envoy Gateway's credential injection:
    the key `credential` of the named Secret)."""
    out = {}
    for f in by_kind(rendered, "HTTPRouteFilter"):
        spec = f["spec"]["credentialInjection"]
        secret = secrets[spec["credential"]["valueRef"]["name"]]
        out[spec.get("header", "Authorization")] = secret["credential"]
    return out


@contextlib.contextmanager
def cluster(
    rendered: list[Doc],
    secrets: Mapping[str, Mapping[str, str]],
    cluster_env: Mapping[str, str],
    replicas: Mapping[str, int] | None = None,
    timeout: float = 180,
) -> Iterator[Cluster]:
    """Every Knative Service of `rendered` running, with the broker in front of the
    Triggers. `replicas` scales some Services out (as the autoscaler would)."""
    ksvcs = knative_services(rendered)
    started: dict[str, list[Replica]] = {}
    holder: dict[str, Cluster] = {}
    broker = Broker(by_kind(rendered, "Trigger"), lambda name: holder["c"].url(name))
    with broker_ingress(broker), tempfile.TemporaryDirectory(prefix="knative-image-") as tmp:
        app = image_app(Path(tmp))
        try:
            for name, ksvc in sorted(ksvcs.items()):
                env = scaled(container_env(ksvc, rendered, secrets, broker.url))
                count = (replicas or {}).get(name, 1)
                started[name] = [start_replica(name, env, cluster_env, app) for _ in range(count)]
            holder["c"] = Cluster(rendered, started, broker, injected(rendered, secrets))
            wait_started([r for rs in started.values() for r in rs], timeout)
            yield holder["c"]
        finally:
            for rs in started.values():
                for r in rs:
                    stop(r)
