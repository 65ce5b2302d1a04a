"""The local gateway answers only Host names it serves (DNS rebinding against `make dev`):
loopback names and addresses with any port by default, more when configured."""

from __future__ import annotations

import json

import pytest

from funcmart_hosts.gateway.auth import TokenVerifier
from funcmart_hosts.gateway.events import HttpRequest
from funcmart_hosts.gateway.routes import Route, RouteTable
from funcmart_hosts.gateway.template import Function, HttpRoute
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET, LocalSettings
from funcmart_hosts.local.gateway import Gateway
from funcmart_hosts.local.hostnames import HostNames
from funcmart_hosts.local.runtime import Invoker, LoadedFunction

calls: list[str] = []


def pong(event, _context):  # type: ignore[no-untyped-def]
    calls.append(event["rawPath"])
    return {"statusCode": 200, "body": "pong"}


def gateway(hosts: HostNames | None = None) -> Gateway:
    route = HttpRoute("GET", "/ping", public=True)
    spec = Function("Ping", "ping.handler", ".", 3, {}, routes=(route,))
    invoker = Invoker({"Ping": LoadedFunction(spec, "local-Ping", "arn:Ping", {}, pong)})
    verifier = TokenVerifier(secret=DEFAULT_DEV_JWT_SECRET)
    return Gateway(RouteTable([Route("Ping", route)]), invoker, verifier, {}, hosts=hosts)


def ask(gw: Gateway, *hosts: str, protocol: str = "HTTP/1.1") -> tuple[int, dict]:
    calls.clear()
    headers = [("Host", h) for h in hosts]
    response = gw.handle(HttpRequest("GET", "/ping", headers, protocol=protocol)).response
    content_type = {k.lower(): v for k, v in response.headers}.get("content-type")
    body = json.loads(response.body) if content_type == "application/problem+json" else {}
    return response.status, body


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:3000", "127.0.0.1:3000", "127.0.0.1", "[::1]:3000", "[::1]",
     "app.localhost:8080", "LOCALHOST:3000", "localhost.:3000", "127.1.2.3:80"],
)  # fmt: skip
def test_loopback_names_are_served_on_any_port(host: str) -> None:
    assert ask(gateway(), host)[0] == 200
    assert calls == ["/ping"]


@pytest.mark.parametrize(
    "host",
    ["attacker.example", "attacker.example:3000", "localhost.attacker.example",
     "10.0.0.5:3000", "[fe80::1]:3000", "127.0.0.1.nip.io:3000"],
)  # fmt: skip
def test_any_other_host_is_misdirected_and_runs_nothing(host: str) -> None:
    status, problem = ask(gateway(), host)
    assert status == 421
    assert problem["status"] == 421
    assert "FUNCMART_ALLOWED_HOSTS" in problem["detail"]
    assert calls == []


@pytest.mark.parametrize(
    "hosts", [("localhost", "attacker.example"), ("a b",), ("localhost:x",), ("[::1",), ()]
)
def test_no_several_or_malformed_hosts_are_bad_requests(hosts: tuple[str, ...]) -> None:
    status, problem = ask(gateway(), *hosts)
    assert (status, problem["status"]) == (400, 400)
    assert calls == []


def test_an_http_1_0_request_without_host_is_served() -> None:
    assert ask(gateway(), protocol="HTTP/1.0")[0] == 200


def test_configured_names_are_served_too() -> None:
    gw = gateway(HostNames(["dev.shop.test", "192.168.1.20", "fd00::5", "0.0.0.0"]))
    for host in ("dev.shop.test:3000", "192.168.1.20:3000", "[fd00::5]:3000", "localhost"):
        assert ask(gw, host)[0] == 200, host
    assert ask(gw, "0.0.0.0:3000")[0] == 421  # a wildcard bind is not a name
    assert ask(gw, "other.shop.test")[0] == 421


def test_the_local_settings_read_the_names_from_the_environment() -> None:
    settings = LocalSettings.load({"FUNCMART_ALLOWED_HOSTS": "dev.shop.test,box.lan"})
    hosts = HostNames(settings.allowed_hosts.split(","))
    assert hosts.serves("dev.shop.test")
    assert hosts.serves("box.lan")
