"""The gateway without sockets: routing, the authorizer, and what failures look like."""

import json

import pytest

from funcmart_hosts.gateway.auth import TokenVerifier, mint_token
from funcmart_hosts.gateway.events import HttpRequest
from funcmart_hosts.gateway.routes import Route, RouteTable
from funcmart_hosts.gateway.template import Function, HttpRoute
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET
from funcmart_hosts.local.gateway import Gateway
from funcmart_hosts.local.resources import JwtConfig
from funcmart_hosts.local.runtime import Invoker, LoadedFunction

CONFIG = JwtConfig(issuer="https://funcmart.local/", audiences=("funcmart",))
seen = []


def echo(event, context):
    seen.append(event)
    return {"statusCode": 200, "headers": {"X-Fn": context.function_name}, "body": "ok"}


def boom(_event, _context):
    raise RuntimeError("kaput")


def malformed(_event, _context):
    return {"statusCode": "teapot"}


def fn(lid, handler, method, path, public):
    route = HttpRoute(method, path, public=public, authorizer=None if public else "Jwt")
    spec = Function(lid, f"{lid}.handler", ".", 3, {}, routes=(route,))
    loaded = LoadedFunction(spec, f"local-{lid}", f"arn:{lid}", {}, handler)
    return loaded, Route(lid, route)


@pytest.fixture
def gateway():
    fns = [
        fn("Public", echo, "GET", "/open", True),
        fn("Private", echo, "POST", "/closed/{id}", False),
        fn("Boom", boom, "GET", "/boom", True),
        fn("Malformed", malformed, "GET", "/malformed", True),
    ]
    invoker = Invoker({f.logical_id: f for f, _ in fns})
    routes = RouteTable(r for _, r in fns)
    seen.clear()
    return Gateway(routes, invoker, TokenVerifier(secret=DEFAULT_DEV_JWT_SECRET), {"Jwt": CONFIG})


def call(gateway, method, target, headers=(), body=b""):
    out = gateway.handle(HttpRequest(method, target, [("Host", "localhost"), *headers], body))
    return out.response


def header(resp, name):
    return next((v for k, v in resp.headers if k.lower() == name.lower()), None)


def test_a_public_route_is_invoked_without_an_authorizer(gateway):
    resp = call(gateway, "GET", "/open?x=1")
    assert (resp.status, resp.body, header(resp, "X-Fn")) == (200, b"ok", "local-Public")
    assert "authorizer" not in seen[-1]["requestContext"]


def test_no_route_is_a_404_problem(gateway):
    resp = call(gateway, "GET", "/nowhere")
    assert resp.status == 404
    assert header(resp, "Content-Type") == "application/problem+json"
    assert json.loads(resp.body)["status"] == 404


def test_a_protected_route_without_a_token_is_401(gateway):
    resp = call(gateway, "POST", "/closed/1")
    assert resp.status == 401
    assert header(resp, "WWW-Authenticate") == "Bearer"
    assert header(resp, "Content-Type") == "application/problem+json"
    assert not seen


def test_a_bad_token_is_401_with_the_reason(gateway):
    resp = call(gateway, "POST", "/closed/1", [("Authorization", "Bearer nope")])
    assert resp.status == 401
    assert header(resp, "WWW-Authenticate").startswith('Bearer error="invalid_token"')


def test_verified_claims_reach_the_function_as_api_gateway_puts_them(gateway):
    token = mint_token(DEFAULT_DEV_JWT_SECRET, CONFIG, "root", ["admin"])
    resp = call(gateway, "POST", "/closed/7", [("Authorization", f"Bearer {token}")])
    assert resp.status == 200
    event = seen[-1]
    assert event["pathParameters"] == {"id": "7"}
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert (claims["sub"], claims["groups"]) == ("root", "[admin]")
    assert isinstance(claims["exp"], str)


def test_a_function_that_raises_is_a_500_problem(gateway, caplog):
    resp = call(gateway, "GET", "/boom")
    assert resp.status == 500
    assert header(resp, "Content-Type") == "application/problem+json"
    assert "kaput" not in resp.body.decode()  # the client never sees internals
    assert any("Boom raised" in r.getMessage() for r in caplog.records)


def test_a_malformed_result_is_a_502_problem(gateway):
    resp = call(gateway, "GET", "/malformed")
    assert resp.status == 502
    assert header(resp, "Content-Type") == "application/problem+json"
