"""Knative: any function, served by functions-framework, chosen by the environment.

One container image holds every function; each Knative Service sets which one it runs:

    FUNCMART_FUNCTION   the template's logical id (GetProduct): names it in logs and traces
    FUNCMART_HANDLER    "<module>.<attribute>" as in template.yaml (get_product.handler)
    FUNCMART_TRIGGER    http | queue | schedule
    FUNCMART_ROUTES     for http: JSON, [{"route": "GET /products/{productId}", "public": true}]

With template.yaml at hand (a checkout, not the image), FUNCMART_FUNCTION alone is enough: the
handler, trigger, routes and timeout are read from the template. `tools/manifests.py` writes
the four variables into every Service in infra/ from the same template.

What each trigger gets, always in the shape Lambda would deliver:

- http: functions-framework's HTTP signature. The request becomes an API Gateway HTTP API
  payload 2.0 event, bearer tokens are verified as the HTTP API's JWT authorizer does
  (FUNCMART_JWT_ISSUER, FUNCMART_JWT_AUDIENCE, and FUNCMART_JWT_SECRET for HS256 or
  FUNCMART_JWKS_URL), and the result maps back to the HTTP response (`funcmart_hosts.gateway`).
- queue: the CloudEvent signature (binary and structured modes). Each CloudEvent from the
  broker becomes a one-record SQS batch; a record the function reports as failed answers 500,
  so the Trigger's delivery policy retries it and finally sends it to its dead-letter sink.
- schedule: a PingSource CloudEvent becomes an EventBridge scheduled event.

Every CloudEvent must carry our publishers' signature (`funcmart.adapters.event_signing`,
keyed by FUNCMART_EVENT_KEY and, during a rotation, FUNCMART_EVENT_KEY_PREVIOUS): Knative
Eventing's default feature flags let any pod POST an event to a consumer. One without a valid
signature is answered 403 problem+json before the function runs (a status the broker does not
retry), counted as EventSignatureFailures and logged; nothing changes. The one exception is
the PingSource's own event type on a schedule Service: a PingSource cannot sign, and a forged
tick only runs the reconciler early. A consumer (and a publisher) refuses to start without a
key, or with a placeholder or a key under 32 bytes, as it refuses such a JWT secret.

Every service also answers GET /healthz (for its probes) and serves its metrics through
prometheus_client at GET /metrics on METRICS_PORT (9464), a port no route exposes.

Behind the Gateway, the Knative ingress, the activator and queue-proxy, the peer address is
always a proxy's; the caller's address (`requestContext.http.sourceIp`, which anonymous rate
limits count) is the right-most X-Forwarded-For entry that is not a trusted proxy: outside
TRUSTED_PROXY_CIDRS, or TRUSTED_PROXY_HOPS entries from the right. Never the left-most,
which any client can write.

Whatever reaches the app gets problem+json: a method no route takes (405 with Allow), a body
over the limit (413), a body whose chunked framing the server's parser refuses while it is
read (400). What gunicorn refuses before the app sees the request (Content-Length headers
that disagree, a transfer coding it does not know, a method that is not an upper-case
token) it answers itself, with its status, and the worker (`funcmart_hosts.knative.worker`)
writes that answer as problem+json too.

Run it with `python -m funcmart_hosts.knative` (the image's command); functions-framework's
gunicorn server takes WORKERS and THREADS. Functions keep no request state on modules or
classes, so THREADS > 1 serves concurrent requests in one process.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flask
import functions_framework
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from werkzeug.exceptions import HTTPException

from funcmart.adapters.event_signing import BadSignature, EventKeys
from funcmart.adapters.metrics import REGISTRY, InProcessMetrics
from funcmart.problems import PROBLEM_JSON, problem_body
from funcmart.settings import Settings, SettingsError
from funcmart_hosts.gateway.auth import JwtConfig, TokenVerifier
from funcmart_hosts.gateway.context import LambdaContext
from funcmart_hosts.gateway.edge import API_GATEWAY_BODY_LIMIT, Edge
from funcmart_hosts.gateway.events import ApiContext, HttpRequest, request_id, scheduled_event
from funcmart_hosts.gateway.responses import HttpResponse, problem_response, safe_headers
from funcmart_hosts.gateway.routes import HttpRoute, Route, RouteTable

log = logging.getLogger(__name__)
TRIGGERS = ("http", "queue", "schedule")
# functions-framework loads its targets from a source file: this one re-exports ours.
ENTRY = Path(__file__).resolve().parent / "main.py"
PING_TYPE = "dev.knative.sources.ping"
# The one JWT authorizer a Knative function has (FUNCMART_JWT_*), named as in template.yaml.
AUTHORIZER = "Jwt"
Handler = Callable[[dict[str, Any], Any], Any]
# Secrets that are public knowledge: the one this repository once shipped as a placeholder and
# the local gateway's dev secret. A host refuses to start with either.
PUBLIC_SECRETS = frozenset(
    {
        "replace-me-with-at-least-32-random-bytes-of-secret",
        "funcmart-local-dev-secret-do-not-use-in-any-deployment",
    }
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Where the event signing keys are read from: the function package's settings name them.
EVENT_KEY = Settings.env_names("event_signing_key")[0]
EVENT_PREVIOUS_KEY = Settings.env_names("event_signing_previous_key")[0]


def check_secret(name: str, secret: str, alternative: str = "") -> None:
    """Refuse a secret anyone can read in the repository, or one under 32 bytes (HMAC-SHA256
    and HS256 both want at least the hash's length)."""
    if secret in PUBLIC_SECRETS or secret.lower().startswith(("replace-me", "changeme")):
        raise SettingsError(
            f"{name} is a published placeholder or dev secret: create your own "
            f"(docs/deploy.md){alternative}"
        )
    if len(secret.encode()) < 32:
        raise SettingsError(f"{name} must be at least 32 bytes")


def check_jwt_secret(secret: str) -> None:
    check_secret("FUNCMART_JWT_SECRET", secret, " or use FUNCMART_JWKS_URL")


@dataclass(frozen=True)
class KnativeSettings:
    """Which function this container serves and how its edge behaves; read once at start."""

    function: str
    handler: str
    trigger: str
    routes: tuple[HttpRoute, ...] = ()
    timeout_seconds: float = 10
    memory_mb: int = 512
    jwt_issuer: str | None = None
    jwt_audiences: tuple[str, ...] = ()
    jwt_secret: str | None = None
    jwks_url: str | None = None
    namespace: str = "default"
    region: str = "us-east-1"
    template_path: Path | None = None
    trusted_networks: tuple[Network, ...] = ()
    trusted_hops: int = 0
    metrics_port: int | None = None
    workers: int = 1
    # The keys CloudEvents are signed with (never shown in a repr), and whether this function
    # publishes to a broker (PUBLISHER=cloudevents with K_SINK or BROKER_URL).
    event_key: str | None = field(default=None, repr=False)
    event_previous_key: str | None = field(default=None, repr=False)
    publishes: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> KnativeSettings:
        env = os.environ if environ is None else environ
        name = env.get("FUNCMART_FUNCTION") or env.get("K_SERVICE") or ""
        spec: dict[str, Any]
        if env.get("FUNCMART_HANDLER"):
            spec = {
                "handler": env["FUNCMART_HANDLER"],
                "trigger": env.get("FUNCMART_TRIGGER", ""),
                "routes": _parse_routes(env.get("FUNCMART_ROUTES", "")),
                "timeout_seconds": float(env.get("FUNCMART_TIMEOUT_SECONDS", "10")),
            }
        elif env.get("FUNCMART_FUNCTION"):
            spec = _from_template(name, env.get("FUNCMART_TEMPLATE"))
        else:
            raise SettingsError("set FUNCMART_HANDLER (and FUNCMART_TRIGGER) or FUNCMART_FUNCTION")
        audiences = tuple(a.strip() for a in env.get("FUNCMART_JWT_AUDIENCE", "").split(",") if a)
        settings = cls(
            function=name or spec["handler"],
            jwt_issuer=env.get("FUNCMART_JWT_ISSUER") or None,
            jwt_audiences=audiences,
            jwt_secret=env.get("FUNCMART_JWT_SECRET") or None,
            jwks_url=env.get("FUNCMART_JWKS_URL") or None,
            memory_mb=int(env.get("FUNCMART_MEMORY_MB", "512")),
            namespace=env.get("POD_NAMESPACE") or _service_account_namespace(),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            trusted_networks=_networks(env.get("TRUSTED_PROXY_CIDRS", "")),
            trusted_hops=_int(env, "TRUSTED_PROXY_HOPS", 0),
            metrics_port=_int(env, "METRICS_PORT", 0) or None,
            workers=_int(env, "WORKERS", 1),
            event_key=env.get(EVENT_KEY) or None,
            event_previous_key=env.get(EVENT_PREVIOUS_KEY) or None,
            publishes=_publishes(env),
            **spec,
        )
        settings.check()
        return settings

    def check(self) -> None:
        if self.trigger not in TRIGGERS:
            raise SettingsError(f"FUNCMART_TRIGGER must be one of {TRIGGERS}, got {self.trigger!r}")
        if self.trigger == "http" and not self.routes:
            raise SettingsError("an http function needs FUNCMART_ROUTES")
        if any(not r.public for r in self.routes):
            if not self.jwt_issuer or not self.jwt_audiences:
                raise SettingsError(
                    "routes with an authorizer need FUNCMART_JWT_ISSUER and FUNCMART_JWT_AUDIENCE"
                )
            if not self.jwt_secret and not self.jwks_url:
                raise SettingsError("set FUNCMART_JWT_SECRET (HS256) or FUNCMART_JWKS_URL")
        if self.jwt_secret:
            check_jwt_secret(self.jwt_secret)
        self._check_event_keys()
        if self.trusted_hops < 0:
            raise SettingsError("TRUSTED_PROXY_HOPS must be 0 or more")
        if self.metrics_port and self.workers != 1:
            # Each worker would count apart, and only one could bind the port.
            raise SettingsError("METRICS_PORT serves one process's metrics: set WORKERS=1")

    def _check_event_keys(self) -> None:
        if not self.event_key and (self.trigger == "queue" or self.publishes):
            role = "consumer" if self.trigger == "queue" else "publisher"
            raise SettingsError(
                f"{EVENT_KEY} is not set: a {role} of CloudEvents needs the key events are "
                "signed with (docs/deploy.md)"
            )
        if self.event_key:
            check_secret(EVENT_KEY, self.event_key)
        if self.event_previous_key:
            check_secret(EVENT_PREVIOUS_KEY, self.event_previous_key)

    def event_keys(self) -> EventKeys | None:
        return EventKeys(self.event_key, self.event_previous_key) if self.event_key else None


def _publishes(env: Mapping[str, str]) -> bool:
    broker = any(env.get(n) for n in Settings.env_names("broker_url"))
    return env.get(Settings.env_names("publisher")[0]) == "cloudevents" and broker


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from exc


def _networks(raw: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(c.strip()) for c in raw.split(",") if c.strip())
    except ValueError as exc:
        raise SettingsError(f"TRUSTED_PROXY_CIDRS is a comma-separated CIDR list: {exc}") from exc


def _service_account_namespace() -> str:
    """The pod's namespace without the downward API (its fieldRef needs a Knative flag)."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    try:
        return path.read_text().strip() or "default"
    except OSError:
        return "default"


def client_address(peer: str, forwarded_for: str | None, settings: KnativeSettings) -> str:
    """The caller's address: the right-most X-Forwarded-For entry that a trusted proxy did
    not write. With TRUSTED_PROXY_HOPS, that many entries from the right (the peer counts as
    the first hop); else the first entry from the right outside TRUSTED_PROXY_CIDRS."""
    chain = [e.strip() for e in (forwarded_for or "").split(",") if e.strip()] + [peer]
    if settings.trusted_hops:
        return chain[max(0, len(chain) - 1 - settings.trusted_hops)]
    if not settings.trusted_networks:
        return peer
    for entry in reversed(chain):
        if not _trusted(entry, settings.trusted_networks):
            return entry
    return chain[0]


def _trusted(entry: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(entry)
    except ValueError:
        return False  # not an address: written by the client, so it is the client's word
    return any(address in net for net in networks)


def _parse_routes(raw: str) -> tuple[HttpRoute, ...]:
    if not raw.strip():
        return ()
    try:
        return tuple(_route(str(i["route"]), bool(i.get("public", False))) for i in json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        raise SettingsError(
            f'FUNCMART_ROUTES is JSON like [{{"route": "GET /products", "public": true}}]: {exc}'
        ) from exc


def _route(route_key: str, public: bool) -> HttpRoute:
    method, _, path = route_key.strip().partition(" ")
    if not path.startswith("/"):
        raise ValueError(f"a route looks like 'GET /path', got {route_key!r}")
    return HttpRoute(method.upper(), path, public, None if public else AUTHORIZER)


def _from_template(logical_id: str, path: str | None) -> dict[str, Any]:
    """The function's shape from template.yaml (a checkout has it; the image does not)."""
    try:
        from funcmart_hosts.gateway import template
    except ImportError as exc:  # PyYAML is not in the image
        raise SettingsError("FUNCMART_FUNCTION alone needs template.yaml and PyYAML") from exc
    tpl = template.load(Path(path)) if path else template.load()
    fn = tpl.functions.get(logical_id)
    if fn is None:
        raise SettingsError(f"template.yaml has no function {logical_id!r}")
    trigger = "http" if fn.routes else "queue" if fn.queues else "schedule"
    routes = tuple(
        HttpRoute(r.method, r.path, r.public, None if r.public else AUTHORIZER, r.scopes)
        for r in fn.routes
    )
    return {
        "handler": fn.handler,
        "trigger": trigger,
        "routes": routes,
        "timeout_seconds": float(fn.timeout),
    }


class DeliveryFailed(RuntimeError):
    """A CloudEvent the function could not process: answered with 500 so the broker retries."""

    status = 500
    title = "Event not processed"


class DeliveryForbidden(DeliveryFailed):
    """A CloudEvent without our publishers' valid signature: answered with 403 before the
    function runs. Not 401, which would promise a WWW-Authenticate challenge an event sender
    cannot answer; and a 4xx the broker does not retry (see DeliveryRefused), so an event
    forged into the broker goes once to the dead-letter sink, which refuses it as well."""

    status = 403
    title = "Event not signed by funcmart"


class DeliveryRefused(DeliveryFailed):
    """A CloudEvent that failed for good (the function named it under `permanentFailures`):
    answered with 422, which the broker does not retry, so the event goes to the Trigger's
    dead-letter sink at once. Knative Eventing's data-plane contract (knative/specs,
    specs/eventing/data-plane.md, "Event Acknowledgement and Delivery Retry") retries 404,
    409, 429 and 5xx, and no other 4xx."""

    status = 422
    title = "Event refused"


class Runtime:
    """One function, loaded at cold start, and the edge in front of it."""

    def __init__(self, settings: KnativeSettings, handler: Handler | None = None) -> None:
        self.settings = settings
        self.handler = handler or load_handler(settings.handler)
        verifier = None
        authorizers: dict[str, JwtConfig] = {}
        if settings.jwt_issuer and (settings.jwt_secret or settings.jwks_url):
            authorizers[AUTHORIZER] = JwtConfig(settings.jwt_issuer, settings.jwt_audiences)
            verifier = TokenVerifier(settings.jwt_secret, settings.jwks_url)
        routes = RouteTable(Route(settings.function, spec) for spec in settings.routes)
        api = ApiContext(api_id=settings.namespace, port=int(os.environ.get("PORT", "8080")))
        self.edge = Edge(routes, verifier, authorizers, api=api, metrics=REGISTRY)
        self.event_keys = settings.event_keys()

    def context(self) -> LambdaContext:
        s = self.settings
        arn = f"arn:knative:serving:{s.region}:{s.namespace}:function:{s.function}"
        return LambdaContext(s.function, s.memory_mb, s.timeout_seconds, arn)

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.handler(event, self.context())

    # -- HTTP -------------------------------------------------------------------------
    def serve_http(self, request: flask.Request) -> flask.Response:
        try:
            http_request = to_http_request(request)
        except HTTPException:
            raise  # Werkzeug's own (413 over the limit): answered by http_error
        except Exception as exc:  # the server's body parser: a chunk size that is not hex...
            rid = request_id()
            log.warning("malformed request body (request %s): %r", rid, exc)
            detail = "the request body's framing is not valid HTTP/1.1"
            problem = problem_response(400, "Malformed request", detail, rid)
            return to_flask(problem, streamed=True)  # never read again (see to_flask)
        outcome = self.edge.handle(http_request, lambda _r, event, _id: self.invoke(event))
        response = to_flask(outcome.response)
        response.headers["Apigw-Requestid"] = outcome.request_id
        return response

    # -- CloudEvents ------------------------------------------------------------------
    def serve_cloudevent(self, event: Any) -> None:
        self.authenticate(event)
        if self.settings.trigger == "schedule":
            self.invoke(self.ping_to_scheduled(event))
            return
        if self.settings.trigger != "queue":
            raise DeliveryFailed(f"{self.settings.function} does not take CloudEvents")
        record = cloudevent_to_sqs_record(event, self.settings.region)
        result = self.invoke({"Records": [record]})
        failures = (result or {}).get("batchItemFailures") if isinstance(result, dict) else None
        if not failures:
            return
        refused = result.get("permanentFailures") if isinstance(result, dict) else None
        for item in refused if isinstance(refused, list) else []:
            if isinstance(item, dict) and item.get("itemIdentifier") == record["messageId"]:
                raise DeliveryRefused(
                    f"event {record['messageId']} failed for good ({item.get('reason')}); "
                    "it goes to the dead-letter sink"
                )
        raise DeliveryFailed(f"event {record['messageId']} failed; the broker will retry it")

    def authenticate(self, event: Any) -> None:
        """Refuse (DeliveryForbidden) an event our publishers did not sign. A schedule
        Service takes its PingSource's ticks unsigned: a PingSource cannot sign, and a forged
        tick only runs the reconciler before its minute is up."""
        attributes = dict(event.get_attributes())
        if self.settings.trigger == "schedule" and attributes.get("type") == PING_TYPE:
            return
        try:
            if self.event_keys is None:
                raise BadSignature("this function holds no event signing key")
            self.event_keys.verify(attributes, event.data)
        except BadSignature as bad:
            REGISTRY.incr("EventSignatureFailures")
            log.warning(
                "refused a CloudEvent: %s (id %r, type %r, source %r)",
                bad,
                str(attributes.get("id", ""))[:100],
                str(attributes.get("type", ""))[:100],
                str(attributes.get("source", ""))[:200],
            )
            raise DeliveryForbidden(f"refused: {bad}; nothing was done") from None

    def ping_to_scheduled(self, event: Any) -> dict[str, Any]:
        s = self.settings
        source = str(event["source"])
        rule = (
            f"arn:knative:sources:{s.region}:{s.namespace}:pingsource/{source.rsplit('/', 1)[-1]}"
        )
        return scheduled_event(rule, s.namespace, s.region, event_id=str(event["id"]))


def load_handler(spec: str) -> Handler:
    """`get_product.handler` -> the callable, imported as the Lambda runtime would."""
    module, _, attribute = spec.rpartition(".")
    if not module:
        raise SettingsError(f"a handler looks like 'module.attribute', got {spec!r}")
    handler: Handler = getattr(importlib.import_module(module), attribute)
    return handler


def to_http_request(request: flask.Request) -> HttpRequest:
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        query = request.query_string.decode("latin-1")
        target = quote(request.path) + (f"?{query}" if query else "")
    return HttpRequest(
        method=request.method,
        target=str(target),
        headers=list(request.headers.items()),
        body=request.get_data(),
        source_ip=client_address(
            request.remote_addr or "127.0.0.1",
            request.headers.get("X-Forwarded-For"),
            runtime().settings,
        ),
        protocol=str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
    )


def to_flask(response: HttpResponse, *, streamed: bool = False) -> flask.Response:
    """The Flask response; `streamed` keeps functions-framework from reading the request
    body after it (its after_request hook does, and over the limit that raises again)."""
    body = iter([response.body]) if streamed else response.body
    out = flask.Response(body, status=response.status)
    out.headers.clear()
    for name, value in safe_headers(response.headers):
        out.headers.add(name, value)
    return out


def http_error(error: HTTPException) -> flask.Response:
    """What Flask, Werkzeug or functions-framework answer on their own (a method no route
    takes, a body over the limit, a malformed request) as problem+json, never an HTML page.
    A 405 names the methods the URL takes (the function's own routes answer 405 at the
    edge, as the local gateway does)."""
    status = error.code or 500
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    headers: list[tuple[str, str]] = []
    allowed = getattr(error, "valid_methods", None)
    if status == 405 and allowed:
        headers.append(("Allow", ", ".join(sorted(allowed))))
    rid = request_id()
    detail = {
        405: "this URL does not take this method",
        413: f"the request body is over API Gateway's limit of {API_GATEWAY_BODY_LIMIT} bytes",
    }.get(status, title)
    response = to_flask(problem_response(status, title, detail, rid, headers), streamed=True)
    response.headers["Apigw-Requestid"] = rid
    return response


def cloudevent_to_sqs_record(event: Any, region: str) -> dict[str, Any]:
    """One CloudEvent as the record of an SQS batch: the same body, id and correlation id."""
    attributes = dict(event.get_attributes())
    data = event.data
    if isinstance(data, bytes | bytearray):
        body = bytes(data).decode("utf-8", errors="replace")
    elif isinstance(data, str):
        body = data
    elif data is None:
        body = ""
    else:
        body = json.dumps(data, separators=(",", ":"))
    correlation = str(attributes.get("correlationid") or "")
    # A dead-lettered event names the subscriber that gave up on it (knativeerrordest).
    origin = str(attributes.get("knativeerrordest") or attributes.get("source") or "broker")
    origin = origin.split("://", 1)[-1].split(".", 1)[0].strip("/").replace("/", "-") or "broker"
    now_ms = str(int(time.time() * 1000))
    message_attributes = {
        "eventType": _string_attribute(str(attributes.get("type", ""))),
    }
    if correlation:
        message_attributes["correlationId"] = _string_attribute(correlation)
    # The CloudEvents distributed-tracing extension, where SQS carries it: the trace goes on.
    for name in ("traceparent", "tracestate"):
        if isinstance(attributes.get(name), str) and attributes[name]:
            message_attributes[name] = _string_attribute(attributes[name])
    return {
        "messageId": str(attributes["id"]),
        "receiptHandle": "",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now_ms,
            "SenderId": str(attributes.get("source", "")),
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": message_attributes,
        "md5OfBody": "",
        "eventSource": "knative:broker",
        "eventSourceARN": f"arn:knative:eventing:{region}:broker:{origin}",
        "awsRegion": region,
    }


def _string_attribute(value: str) -> dict[str, Any]:
    return {
        "stringValue": value,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }


@functools.cache
def runtime() -> Runtime:
    """The function this process serves: built once, at cold start, from the environment."""
    return Runtime(KnativeSettings.load())


# -- functions-framework targets (re-exported by functions/main.py) ----------------------


@functions_framework.http
def http(request: flask.Request) -> flask.Response:
    return runtime().serve_http(request)


@functions_framework.cloud_event
def cloudevent(event: Any) -> None:
    try:
        runtime().serve_cloudevent(event)
    except DeliveryFailed as failed:
        # Answered, not crashed: the function (or the host) has logged why; the broker retries
        # a 500 and dead-letters a 422 (DeliveryRefused) or a 403 (DeliveryForbidden) at once.
        body = problem_body(failed.status, failed.title, str(failed), request_id())
        flask.abort(flask.Response(body, status=failed.status, content_type=PROBLEM_JSON))


def healthz() -> flask.Response:
    """Liveness and readiness: the function loaded at cold start and the process answers."""
    runtime()
    return flask.Response("ok\n", content_type="text/plain")


class InProcessCollector:
    """The function's counters and histograms as prometheus_client metric families."""

    def __init__(self, metrics: InProcessMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        bounds = [str(b) for b in InProcessMetrics.BUCKETS_SECONDS] + ["+Inf"]
        for kind, name, prom, series in self.metrics.families():
            names = [k for k, _ in series[0][0]] if series else []
            family: CounterMetricFamily | HistogramMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(prom.removesuffix("_total"), name, labels=names)
                for labels, (value,) in series:
                    family.add_metric([v for _, v in labels], value)
            else:
                family = HistogramMetricFamily(prom, f"{name} (seconds)", labels=names)
                for labels, h in series:
                    buckets = list(zip(bounds, [*h[2:], h[0]], strict=True))
                    family.add_metric([v for _, v in labels], buckets, h[1])
            yield family


def metrics_registry(metrics: InProcessMetrics = REGISTRY) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InProcessCollector(metrics))
    ProcessCollector(registry=registry)
    return registry


def start_metrics_server(port: int) -> None:
    """GET /metrics on `port`, in the process that serves invocations (a gunicorn worker:
    one per pod, so a scrape sees every invocation of the pod)."""
    start_http_server(
        port, addr=os.environ.get("METRICS_HOST", "0.0.0.0"), registry=metrics_registry()
    )
    log.info("metrics on port %s", port)


def create_app() -> flask.Flask:
    """functions-framework's app for the configured function, plus GET /healthz."""
    settings = runtime().settings
    target = "http" if settings.trigger == "http" else "cloudevent"
    app: flask.Flask = functions_framework.create_app(target=target, source=str(ENTRY))
    app.config["MAX_CONTENT_LENGTH"] = API_GATEWAY_BODY_LIMIT
    app.register_error_handler(HTTPException, http_error)
    app.add_url_rule("/healthz", "funcmart-healthz", healthz, methods=["GET"])
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcmart_hosts.knative")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--check", action="store_true", help="load the function, then exit")
    args = parser.parse_args(argv)
    app = create_app()
    s = runtime().settings
    if args.check:
        print(f"{s.function}: {s.handler} ({s.trigger}) loads")
        return 0
    from functions_framework._http import create_server

    # gunicorn's threaded worker, answering what gunicorn refuses by itself as problem+json.
    options: dict[str, Any] = {"worker_class": "funcmart_hosts.knative.worker.ProblemThreadWorker"}
    if s.metrics_port:
        port = s.metrics_port
        # After the fork: the worker, not the master, keeps the counters.
        options["post_worker_init"] = lambda _worker: start_metrics_server(port)
    create_server(app, False, **options).run(args.host, args.port)
    return 0
