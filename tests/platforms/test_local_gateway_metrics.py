"""The local gateway counts every request through the shared edge and serves GET /metrics."""

from __future__ import annotations

from funcmart.adapters.metrics import REGISTRY
from funcmart_hosts.gateway.auth import TokenVerifier
from funcmart_hosts.gateway.events import HttpRequest
from funcmart_hosts.gateway.routes import HttpRoute, Route, RouteTable
from funcmart_hosts.gateway.template import Function
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET
from funcmart_hosts.local.gateway import Gateway
from funcmart_hosts.local.runtime import Invoker, LoadedFunction


def teapot(_event, _context):  # type: ignore[no-untyped-def]
    return {"statusCode": 418, "body": "short and stout"}


def gateway() -> Gateway:
    route = HttpRoute("GET", "/pot/{id}", public=True)
    spec = Function("Pot", "pot.handler", ".", 3, {}, routes=(route,))
    invoker = Invoker({"Pot": LoadedFunction(spec, "local-Pot", "arn:Pot", {}, teapot)})
    return Gateway(
        RouteTable([Route("Pot", route)]), invoker, TokenVerifier(secret=DEFAULT_DEV_JWT_SECRET), {}
    )


def test_requests_are_counted_and_served_at_metrics() -> None:
    gw = gateway()
    assert gw.handle(HttpRequest("GET", "/pot/1", [("Host", "localhost")])).response.status == 418
    assert gw.handle(HttpRequest("GET", "/nowhere", [("Host", "localhost")])).response.status == 404
    metrics = gw.handle(HttpRequest("GET", "/metrics", [("Host", "localhost")])).response
    assert metrics.status == 200
    assert ("Content-Type", "text/plain; version=0.0.4; charset=utf-8") in metrics.headers
    text = metrics.body.decode()
    assert 'funcmart_http_requests_total{code="418",route="GET /pot/{id}"}' in text
    assert 'funcmart_http_requests_total{code="404",route="unmatched"}' in text
    assert 'funcmart_http_latency_seconds_bucket{route="GET /pot/{id}",le="+Inf"}' in text
    assert text == REGISTRY.prometheus_text()  # the process-wide registry
