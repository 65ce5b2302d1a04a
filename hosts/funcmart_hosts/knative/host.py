"""Knative: any function, served by one ASGI server (uvicorn), chosen by the environment.

One container image holds every function; each Knative Service sets which one it runs:

    FUNCMART_FUNCTION   the template's logical id (GetProduct): names it in logs and traces
    FUNCMART_HANDLER    "<module>.<attribute>" as in template.yaml (get_product.handler)
    FUNCMART_TRIGGER    http | queue | schedule
    FUNCMART_ROUTES     for http: JSON, [{"route": "GET /products/{productId}", "public": true}]

With template.yaml at hand (a checkout, not the image), FUNCMART_FUNCTION alone is enough: the
handler, trigger, routes and timeout are read from the template. `tools/manifests.py` writes
the four variables into every Service in infra/ from the same template.

What each trigger gets, always in the shape Lambda would deliver:

- http: the request becomes an API Gateway HTTP API payload 2.0 event, bearer tokens are
  verified as the HTTP API's JWT authorizer does (FUNCMART_JWT_ISSUER, FUNCMART_JWT_AUDIENCE,
  and FUNCMART_JWT_SECRET for HS256 or FUNCMART_JWKS_URL), and the result maps back to the
  HTTP response (`funcmart_hosts.gateway`). The function is called through its async path
  (`funcmart.entrypoints.http.async_handler`): a GetProduct cache hit awaits Redis on the
  event loop; everything else runs the same synchronous handler Lambda runs, on a thread.
- queue: CloudEvents (binary and structured content modes). Each one from the broker
  becomes a one-record SQS batch; a record the function reports as failed answers 500, so
  the Trigger's delivery policy retries it and finally sends it to its dead-letter sink.
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
limits count) is the address the outermost trusted proxy received the request from, read
from X-Forwarded-For (`client_address`): TRUSTED_PROXY_HOPS proxies every request crosses,
and TRUSTED_EDGE_HOPS more on a request that carries the edge's token (FUNCMART_EDGE_TOKEN in
X-Funcmart-Edge, which the Gateway injects and no other caller knows); or, for other
topologies, the right-most entry outside TRUSTED_PROXY_CIDRS. Never an entry a client wrote:
an entry that must be read and is not an IP address is answered 400 problem+json.

Whatever reaches the server gets problem+json: a method no route takes (405 with Allow), a
body over the limit (413), a request the HTTP parser refuses (400: bad framing, a bare CR,
Content-Length beside Transfer-Encoding, HTTP/0.9), headers over the limit (431): see
`funcmart_hosts.serving`, the HTTP stack every host shares.

Run it with `python -m funcmart_hosts.knative` (the image's command): one process per pod
(scale out with Knative, not with workers), one event loop, THREADS threads for the blocking
work (a cache miss's DynamoDB read, a queue consumer). SIGTERM stops accepting and lets
requests in flight finish within the function's timeout. Each request writes one JSON
access line to stdout (LOG_LEVEL=WARNING turns them off); `funcmart_host_startup_seconds`
on the metrics port says how long the pod took from its process's start to ready.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import gc
import hmac
import importlib
import ipaddress
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from funcmart.adapters import tracing
from funcmart.adapters.event_signing import BadSignature, EventKeys, sqs_origin, verify
from funcmart.adapters.metrics import REGISTRY, InProcessMetrics
from funcmart.entrypoints.http import MAX_JSON_DEPTH, async_handler, nests_deeper_than
from funcmart.settings import Settings, SettingsError
from funcmart_hosts.gateway.auth import JwtConfig, TokenVerifier
from funcmart_hosts.gateway.context import LambdaContext
from funcmart_hosts.gateway.edge import API_GATEWAY_BODY_LIMIT, Edge, Outcome
from funcmart_hosts.gateway.events import ApiContext, HttpRequest, request_id, scheduled_event
from funcmart_hosts.gateway.responses import HttpResponse, problem_response
from funcmart_hosts.gateway.routes import HttpRoute, Route, RouteTable
from funcmart_hosts.serving import (
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    header,
    loop_factory,
    read_body,
    send_response,
    server,
    target_of,
)

log = logging.getLogger(__name__)
TRIGGERS = ("http", "queue", "schedule")
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
# The token the edge (the Gateway) injects into every request it forwards: a request that
# carries it crossed the edge, so the edge's own X-Forwarded-For entries can be trusted.
EDGE_TOKEN = "FUNCMART_EDGE_TOKEN"
EDGE_HEADER = b"x-funcmart-edge"


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
    jwt_secret: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    namespace: str = "default"
    region: str = "us-east-1"
    template_path: Path | None = None
    trusted_networks: tuple[Network, ...] = ()
    trusted_hops: int = 0
    # Proxies trusted on top of trusted_hops on a request that carries edge_token.
    edge_hops: int = 0
    edge_token: str | None = field(default=None, repr=False)
    metrics_port: int | None = None
    threads: int = 8
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
            edge_hops=_int(env, "TRUSTED_EDGE_HOPS", 0),
            edge_token=env.get(EDGE_TOKEN) or None,
            metrics_port=_int(env, "METRICS_PORT", 0) or None,
            threads=_workers_and_threads(env),
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
        self._check_proxies()
        if self.threads < 1:
            raise SettingsError("THREADS must be 1 or more")

    def _check_proxies(self) -> None:
        if self.trusted_hops < 0 or self.edge_hops < 0:
            raise SettingsError("TRUSTED_PROXY_HOPS and TRUSTED_EDGE_HOPS must be 0 or more")
        if self.trusted_networks and (self.trusted_hops or self.edge_hops):
            raise SettingsError(
                "set TRUSTED_PROXY_HOPS (and TRUSTED_EDGE_HOPS) or TRUSTED_PROXY_CIDRS, not both"
            )
        if self.trigger != "http":
            return  # a consumer reads no client address
        if self.edge_hops and not self.edge_token:
            raise SettingsError(
                f"TRUSTED_EDGE_HOPS is set but {EDGE_TOKEN} is not: the token the Gateway "
                "injects is what tells a request that crossed it (docs/deploy.md)"
            )
        if self.edge_token:
            if not self.edge_hops:
                raise SettingsError(f"{EDGE_TOKEN} is set but TRUSTED_EDGE_HOPS is 0")
            check_secret(EDGE_TOKEN, self.edge_token)

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


def _workers_and_threads(env: Mapping[str, str]) -> int:
    """THREADS; WORKERS other than 1 is refused: one process per pod, Knative scales pods."""
    if _int(env, "WORKERS", 1) != 1:
        raise SettingsError(
            "WORKERS: the host serves with one process per pod; scale with Knative "
            "(autoscaling annotations), not with workers"
        )
    return _int(env, "THREADS", 8)


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


class ForwardedForRefused(ValueError):
    """An X-Forwarded-For entry the caller's address is read from is not an IP address."""


def client_address(
    peer: str, forwarded_for: str | None, settings: KnativeSettings, from_edge: bool = False
) -> str:
    """The caller's address: the address the outermost trusted proxy received the request
    from. Each proxy appends the address it received from to X-Forwarded-For, so with N
    trusted proxies (the peer is the first) it is the N-th entry from the right of
    X-Forwarded-For followed by the peer: TRUSTED_PROXY_HOPS proxies, plus TRUSTED_EDGE_HOPS
    when the request carries the edge's token (`from_edge`). With TRUSTED_PROXY_CIDRS
    instead, it is the right-most entry outside those networks. Whatever lies left of it was
    written by the caller and is never read; an entry that is read and is not an IP address
    (any client can write one, of any size) raises ForwardedForRefused."""
    chain = [e.strip() for e in (forwarded_for or "").split(",") if e.strip()] + [peer]
    hops = settings.trusted_hops + (settings.edge_hops if from_edge else 0)
    if hops:
        return str(_address(chain[max(0, len(chain) - 1 - hops)]))
    if not settings.trusted_networks:
        return peer
    for entry in reversed(chain):
        address = _address(entry)
        if not any(address in network for network in settings.trusted_networks):
            return str(address)
    return str(_address(chain[0]))


def _address(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An X-Forwarded-For entry as an address: IPv4-mapped IPv6 as IPv4 (one client, one
    identity); anything else, a zone index included, is refused."""
    try:
        address = ipaddress.ip_address(entry)
    except ValueError:
        raise ForwardedForRefused(
            f"an X-Forwarded-For entry is not an IP address: {entry[:64]!r}"
        ) from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ForwardedForRefused(f"an X-Forwarded-For entry has a zone index: {entry[:64]!r}")
        return address.ipv4_mapped or address
    return address


def carries_edge_token(token: str | None, values: list[bytes]) -> bool:
    """Whether the request carries the edge's token: exactly one X-Funcmart-Edge value, equal
    to it byte for byte (compared in constant time)."""
    if token is None or len(values) != 1:
        return False
    return hmac.compare_digest(values[0], token.encode())


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
        self.handler_async = async_handler(self.handler)
        verifier = None
        authorizers: dict[str, JwtConfig] = {}
        if settings.jwt_issuer and (settings.jwt_secret or settings.jwks_url):
            authorizers[AUTHORIZER] = JwtConfig(settings.jwt_issuer, settings.jwt_audiences)
            verifier = TokenVerifier(settings.jwt_secret, settings.jwks_url)
        routes = RouteTable(Route(settings.function, spec) for spec in settings.routes)
        api = ApiContext(api_id=settings.namespace, port=int(os.environ.get("PORT", "8080")))
        self.edge = Edge(routes, verifier, authorizers, api=api, metrics=REGISTRY)
        self.event_keys = settings.event_keys()
        s = settings
        self._arn = f"arn:knative:serving:{s.region}:{s.namespace}:function:{s.function}"

    def context(self, request_id: str | None = None) -> LambdaContext:
        """The context the handler gets: its request id is the host's (no other random id)."""
        s = self.settings
        return LambdaContext(s.function, s.memory_mb, s.timeout_seconds, self._arn, request_id)

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.handler(event, self.context())

    async def invoke_async(self, event: dict[str, Any], rid: str | None = None) -> Any:
        return await self.handler_async(event, self.context(rid))

    # -- HTTP -------------------------------------------------------------------------
    async def serve_http(self, request: HttpRequest) -> Outcome:
        """One request through the edge (route, authorize, event) to the function."""
        return await self.edge.handle_async(
            request, lambda _route, event, rid: self.invoke_async(event, rid)
        )

    # -- CloudEvents ------------------------------------------------------------------
    async def serve_cloudevent_async(self, event: ReceivedEvent) -> None:
        """`serve_cloudevent` with the function on a worker thread."""
        await asyncio.to_thread(self.serve_cloudevent, event)

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
            verify(
                self.event_keys,
                attributes,
                event.data,
                consumer=self.settings.function,
                now=time.time(),
            )
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


# The function's clients are built at their first use, not when its module loads: a pod
# that only serves cache hits never loads botocore, and readiness comes sooner. (Lambda
# builds them in its init phase, which SnapStart snapshots.)
CLIENTS_AT_COLD_START = Settings.env_names("clients_at_cold_start")[0]


def load_handler(spec: str) -> Handler:
    """`get_product.handler` -> the callable, imported as the Lambda runtime would."""
    module, _, attribute = spec.rpartition(".")
    if not module:
        raise SettingsError(f"a handler looks like 'module.attribute', got {spec!r}")
    handler: Handler = getattr(importlib.import_module(module), attribute)
    return handler


# ------------------------------------------------------------------------ CloudEvents in


class MalformedEvent(ValueError):
    """A request that is not a CloudEvent this host can read (answered 400)."""


# Attributes every CloudEvent carries (CloudEvents 1.0, "Required Attributes").
_REQUIRED = ("id", "source", "specversion", "type")


@dataclass
class ReceivedEvent:
    """A CloudEvent as received over HTTP (binary or structured content mode): its attributes
    and its data (bytes in binary mode; the JSON value in structured mode)."""

    attributes: dict[str, Any]
    data: Any

    def get_attributes(self) -> dict[str, Any]:
        return self.attributes

    def __getitem__(self, name: str) -> Any:
        return self.attributes[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)


def parse_cloudevent(headers: list[tuple[bytes, bytes]], body: bytes) -> ReceivedEvent:
    """The CloudEvent in a request (HTTP protocol binding 1.0); MalformedEvent if none."""
    content_type = ""
    attributes: dict[str, Any] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name == "content-type":
            content_type = raw_value.decode("latin-1")
        elif name.startswith("ce-") and len(name) > 3:
            attributes[name[3:]] = unquote(raw_value.decode("latin-1"))
    mime = content_type.split(";", 1)[0].strip().lower()
    _readable(body)
    if mime.startswith("application/cloudevents") and not attributes:
        return _structured(body)
    if content_type:
        attributes["datacontenttype"] = content_type
    _require(attributes)
    return ReceivedEvent(attributes, body if body else None)


def _readable(body: bytes) -> None:
    """Every funcmart event is JSON text: refuse, before any work (the signature check
    included), a body that is not UTF-8 or nests deeper than any event."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent("the event's body is not UTF-8 text") from exc
    if nests_deeper_than(text, MAX_JSON_DEPTH):
        raise MalformedEvent("the event nests deeper than any CloudEvent this host takes")


def _structured(body: bytes) -> ReceivedEvent:
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedEvent("a structured-mode event whose body is not JSON") from exc
    if not isinstance(envelope, dict):
        raise MalformedEvent("a structured-mode event is a JSON object")
    data = envelope.pop("data", None)
    encoded = envelope.pop("data_base64", None)
    if encoded is not None:
        try:
            data = base64.b64decode(str(encoded), validate=True)
        except ValueError as exc:
            raise MalformedEvent("data_base64 is not base64") from exc
    _require(envelope)
    return ReceivedEvent(envelope, data)


def _require(attributes: Mapping[str, Any]) -> None:
    missing = [a for a in _REQUIRED if not isinstance(attributes.get(a), str) or not attributes[a]]
    if missing:
        raise MalformedEvent(f"not a CloudEvent: no {', '.join(missing)} attribute")
    if attributes["specversion"] != "1.0":
        raise MalformedEvent("this host takes CloudEvents 1.0")


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
    # Named from signed attributes only (a dead letter's knativeerror* are not signed).
    origin, sent = sqs_origin(attributes)
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
            "SentTimestamp": str(int((sent or time.time()) * 1000)),
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


# ------------------------------------------------------------------------ the ASGI app


class KnativeApp:
    """The ASGI app of one function's container: GET /healthz, then the function (HTTP
    through the edge, CloudEvents through the signature check), every answer problem+json
    when it is an error, one access log line per request."""

    def __init__(self, rt: Runtime, started: float | None = None) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.http = rt.settings.trigger == "http"
        self.started = started
        self._addresses: dict[tuple[str, str | None, bool], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan, no websockets
        t0 = time.perf_counter()
        try:
            outcome = await self._answer(scope, receive)
        except Exception:  # a host fault: answered and logged, never a dropped socket
            rid = request_id()
            log.exception("the host failed on %s (request %s)", scope.get("method"), rid)
            detail = "the function's host failed; see its log"
            outcome = Outcome(problem_response(500, "Internal error", detail, rid), rid)
        await send_response(send, outcome.response, [("Apigw-Requestid", outcome.request_id)])
        access(scope, outcome, t0, self.settings.function)

    async def _answer(self, scope: Scope, receive: Receive) -> Outcome:
        method = scope["method"]
        if scope["path"] == "/healthz" and method in ("GET", "HEAD"):
            body = b"ok\n"
            return Outcome(HttpResponse(200, [("Content-Type", "text/plain")], body), "-")
        if scope.get("http_version") not in ("1.0", "1.1"):
            rid = request_id()
            detail = "the request is not HTTP/1.0 or HTTP/1.1"
            return Outcome(problem_response(400, "Malformed request", detail, rid, CLOSE), rid)
        try:
            body = await read_body(scope, receive, API_GATEWAY_BODY_LIMIT)
        except BodyTooLarge:
            rid = request_id()
            limit = API_GATEWAY_BODY_LIMIT
            detail = f"the request body is over API Gateway's limit of {limit} bytes"
            response = problem_response(413, "Payload too large", detail, rid, CLOSE)
            return Outcome(response, rid)
        if self.http:
            try:
                request = self._request(scope, body)
            except ForwardedForRefused as exc:
                rid = request_id()
                return Outcome(problem_response(400, "Malformed request", str(exc), rid), rid)
            return await self.rt.serve_http(request)
        return await self._deliver(scope, body)

    def _request(self, scope: Scope, body: bytes) -> HttpRequest:
        """The request as the gateway emulation takes it. The edge's token is taken out of
        the headers (the function never sees it); ForwardedForRefused when the caller's
        address would be read from an entry that is not an address."""
        client = scope.get("client")
        peer = client[0] if client else "127.0.0.1"
        headers = []
        edge: list[bytes] = []
        for n, v in scope["headers"]:
            if n == EDGE_HEADER:
                edge.append(v)
            else:
                headers.append((n.decode("latin-1"), v.decode("latin-1")))
        crossed = carries_edge_token(self.settings.edge_token, edge)
        forwarded = header(scope, b"x-forwarded-for")
        # The same proxies send the same chains: each one read once (a refused one never kept).
        key = (peer, forwarded, crossed)
        source_ip = self._addresses.get(key)
        if source_ip is None:
            source_ip = client_address(peer, forwarded, self.settings, crossed)
            if len(self._addresses) >= 4096:
                self._addresses.clear()
            self._addresses[key] = source_ip
        return HttpRequest(
            method=scope["method"],
            target=target_of(scope),
            headers=headers,
            body=body,
            source_ip=source_ip,
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        )

    async def _deliver(self, scope: Scope, body: bytes) -> Outcome:
        rid = request_id()
        if scope["method"] != "POST":
            detail = "this Service takes CloudEvents: POST them"
            response = problem_response(405, "Method not allowed", detail, rid, [("Allow", "POST")])
            return Outcome(response, rid)
        try:
            event = parse_cloudevent(list(scope["headers"]), body)
        except MalformedEvent as exc:
            return Outcome(problem_response(400, "Malformed event", str(exc), rid), rid)
        try:
            await self.rt.serve_cloudevent_async(event)
        except DeliveryFailed as failed:
            # Answered, not crashed: the function (or the host) has logged why; the broker
            # retries a 500 and dead-letters a 422 (DeliveryRefused) or a 403 at once.
            response = problem_response(failed.status, failed.title, str(failed), rid)
            return Outcome(response, rid)
        return Outcome(HttpResponse(200, [], b""), rid, self.settings.function)


CLOSE = [("Connection", "close")]  # the rest of the body is never read


class AccessLog:
    """One JSON line per request on stdout: method, path, route, status, duration, request
    id, function. Written without a logging record, and gathered: the lines of a tenth of a
    second leave in one write (a pod's stdout is unbuffered, so a write per request would be
    a system call per request), the rest at shutdown. Off with LOG_LEVEL=WARNING or above."""

    FLUSH_SECONDS = 0.1
    FLUSH_LINES = 256

    def __init__(self, stream: Any = None, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, scope: Scope, outcome: Outcome, t0: float, function: str) -> None:
        if not self.enabled:
            return
        # JSON written by hand around the three strings a request brings (encoded): this
        # runs on every request.
        route = _ENCODE(outcome.route_key) if outcome.route_key else "null"
        lines = self._lines
        lines.append(
            f'{{"level":"INFO","message":"request","method":{_ENCODE(scope["method"])},'
            f'"path":{_ENCODE(scope["path"][:200])},"route":{route},'
            f'"status":{outcome.response.status},'
            f'"duration_ms":{round((time.perf_counter() - t0) * 1000, 2)},'
            f'"request_id":{_ENCODE(outcome.request_id)},"function":{_ENCODE(function)}}}\n'
        )
        if len(lines) >= self.FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside a loop: nothing would flush it later
                self.flush()
            else:
                self._timer = loop.call_later(self.FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the gathered lines now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        text, self._lines = "".join(self._lines), []
        # stdout closed: the requests were served all the same
        with contextlib.suppress(OSError, ValueError):
            stream = self.stream or sys.stdout
            stream.write(text)
            stream.flush()


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
access = AccessLog(enabled=False)  # main() turns it on from LOG_LEVEL


# ------------------------------------------------------------------------ metrics


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


class StartupCollector:
    """funcmart_host_startup_seconds: from the process's start to the host's readiness (the
    function loaded, the port bound): what a cold start costs this Service's pods."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def collect(self) -> Iterator[Metric]:
        if self.seconds is not None:
            yield GaugeMetricFamily(
                "funcmart_host_startup_seconds",
                "Seconds from the process's start to ready (function loaded, port bound)",
                value=self.seconds,
            )


STARTUP = StartupCollector()


def metrics_registry(metrics: InProcessMetrics = REGISTRY) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InProcessCollector(metrics))
    registry.register(STARTUP)
    ProcessCollector(registry=registry)
    return registry


def start_metrics_server(port: int) -> None:
    """GET /metrics on `port`, from the process that serves invocations (one per pod)."""
    start_http_server(
        port, addr=os.environ.get("METRICS_HOST", "0.0.0.0"), registry=metrics_registry()
    )
    log.info("metrics on port %s", port)


def process_start_time() -> float:
    """The wall-clock time this process started (Linux: from /proc; else import time)."""
    try:
        stat = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(stat[19]) / ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


_IMPORTED = time.time()


def create_app() -> KnativeApp:
    """The ASGI app for the configured function (built at cold start)."""
    return KnativeApp(runtime())


def configure_logging() -> None:
    """Access lines (JSON) to stdout unless LOG_LEVEL is WARNING or above; the host's own
    warnings to stderr."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    access.enabled = logging.getLevelNamesMapping().get(level, logging.INFO) <= logging.INFO
    for name in ("funcmart_hosts", "uvicorn.error"):
        own = logging.getLogger(name)
        if not own.handlers:
            errors = logging.StreamHandler(sys.stderr)
            errors.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
            own.addHandler(errors)
            own.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcmart_hosts.knative")
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--check", action="store_true", help="load the function, then exit")
    args = parser.parse_args(argv)
    configure_logging()
    os.environ.setdefault(CLIENTS_AT_COLD_START, "false")
    app = create_app()
    s = app.settings
    if args.check:
        print(f"{s.function}: {s.handler} ({s.trigger}) loads")
        return 0
    if s.metrics_port:
        start_metrics_server(s.metrics_port)
    sock = socket.create_server((args.host, args.port), backlog=2048, reuse_port=False)
    # The spans still batched go out before the pod ends (Knative stops it with SIGTERM).
    srv = server(
        app,
        host=args.host,
        port=args.port,
        graceful_seconds=s.timeout_seconds,
        after_shutdown=tracing.flush,
    )
    # What start-up built (modules, the function, its schemas) lives as long as the pod:
    # out of the collector's reach, so a full collection under load walks only what requests
    # allocate instead of pausing the event loop over the whole heap.
    gc.collect()
    gc.freeze()
    STARTUP.seconds = time.time() - process_start_time()

    def with_executor() -> asyncio.AbstractEventLoop:
        loop = loop_factory()()
        # Blocking work (botocore, a cache miss, a queue consumer) runs on these threads.
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=s.threads, thread_name_prefix="function")
        )
        return loop

    try:
        with asyncio.Runner(loop_factory=with_executor) as runner:
            runner.run(srv.serve(sockets=[sock]))
    finally:
        access.flush()
    return 0
