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

Every service also answers GET /metrics in the Prometheus text format.

Run it with `python -m funcmart_hosts.knative` (the image's command); functions-framework's
gunicorn server takes WORKERS and THREADS. Functions keep no request state on modules or
classes, so THREADS > 1 serves concurrent requests in one process.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import flask
import functions_framework

from funcmart.adapters.metrics import PROMETHEUS_CONTENT_TYPE, REGISTRY
from funcmart.settings import SettingsError
from funcmart_hosts.gateway.auth import JwtConfig, TokenVerifier
from funcmart_hosts.gateway.context import LambdaContext
from funcmart_hosts.gateway.edge import API_GATEWAY_BODY_LIMIT, Edge
from funcmart_hosts.gateway.events import ApiContext, HttpRequest, scheduled_event
from funcmart_hosts.gateway.responses import HttpResponse
from funcmart_hosts.gateway.routes import HttpRoute, Route, RouteTable

log = logging.getLogger(__name__)
TRIGGERS = ("http", "queue", "schedule")
# functions-framework loads its targets from a source file: this one re-exports ours.
ENTRY = Path(__file__).resolve().parent / "main.py"
PING_TYPE = "dev.knative.sources.ping"
# The one JWT authorizer a Knative function has (FUNCMART_JWT_*), named as in template.yaml.
AUTHORIZER = "Jwt"
Handler = Callable[[dict[str, Any], Any], Any]


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
            namespace=env.get("POD_NAMESPACE", "default"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
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
            if self.jwt_secret and not self.jwks_url and len(self.jwt_secret.encode()) < 32:
                raise SettingsError("FUNCMART_JWT_SECRET must be at least 32 bytes for HS256")


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

    def context(self) -> LambdaContext:
        s = self.settings
        arn = f"arn:knative:serving:{s.region}:{s.namespace}:function:{s.function}"
        return LambdaContext(s.function, s.memory_mb, s.timeout_seconds, arn)

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.handler(event, self.context())

    # -- HTTP -------------------------------------------------------------------------
    def serve_http(self, request: flask.Request) -> flask.Response:
        outcome = self.edge.handle(
            to_http_request(request), lambda _r, event, _id: self.invoke(event)
        )
        response = to_flask(outcome.response)
        response.headers["Apigw-Requestid"] = outcome.request_id
        return response

    # -- CloudEvents ------------------------------------------------------------------
    def serve_cloudevent(self, event: Any) -> None:
        if self.settings.trigger == "schedule":
            self.invoke(self.ping_to_scheduled(event))
            return
        if self.settings.trigger != "queue":
            raise DeliveryFailed(f"{self.settings.function} does not take CloudEvents")
        record = cloudevent_to_sqs_record(event, self.settings.region)
        result = self.invoke({"Records": [record]})
        failures = (result or {}).get("batchItemFailures") if isinstance(result, dict) else None
        if failures:
            raise DeliveryFailed(f"event {record['messageId']} failed; the broker will retry it")

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
        source_ip=request.remote_addr or "127.0.0.1",
        protocol=str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")),
    )


def to_flask(response: HttpResponse) -> flask.Response:
    out = flask.Response(response.body, status=response.status)
    out.headers.clear()
    for name, value in response.headers:
        out.headers.add(name, value)
    return out


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
        # Answered, not crashed: the function has logged why; the broker retries.
        flask.abort(flask.Response(str(failed), status=500, content_type="text/plain"))


def metrics() -> flask.Response:
    return flask.Response(REGISTRY.prometheus_text(), content_type=PROMETHEUS_CONTENT_TYPE)


def create_app() -> flask.Flask:
    """functions-framework's app for the configured function, plus GET /metrics."""
    settings = runtime().settings
    target = "http" if settings.trigger == "http" else "cloudevent"
    app: flask.Flask = functions_framework.create_app(target=target, source=str(ENTRY))
    app.config["MAX_CONTENT_LENGTH"] = API_GATEWAY_BODY_LIMIT
    app.add_url_rule("/metrics", "funcmart-metrics", metrics, methods=["GET"])
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

    create_server(app, False).run(args.host, args.port)
    return 0
