"""The operator console on the local gateway, without sockets: its files with a CSP, the
sign-in config it is given, and the dev sign-in only a loopback page of its own can use."""

from __future__ import annotations

import json
import re

import jwt
import pytest

from funcmart_hosts.gateway.auth import TokenVerifier, mint_token
from funcmart_hosts.gateway.events import HttpRequest
from funcmart_hosts.gateway.routes import RouteTable
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET, LocalSettings
from funcmart_hosts.local.console import Console, OidcConfig
from funcmart_hosts.local.gateway import Gateway
from funcmart_hosts.local.resources import JwtConfig
from funcmart_hosts.local.runtime import Invoker

CONFIG = JwtConfig(issuer="https://funcmart.local/", audiences=("funcmart",))
ORIGIN = "http://127.0.0.1:3000"


def dev_console() -> Console:
    def mint(sub: str, groups: list[str], ttl: int) -> str:
        return mint_token(DEFAULT_DEV_JWT_SECRET, CONFIG, sub, groups, ttl)

    return Console(minter=mint)


def gateway(console: Console) -> Gateway:
    verifier = TokenVerifier(secret=DEFAULT_DEV_JWT_SECRET)
    return Gateway(RouteTable([]), Invoker({}), verifier, {"Jwt": CONFIG}, console=console)


def call(gw, method, target, headers=(), body=b"", source_ip="127.0.0.1"):
    request = HttpRequest(
        method, target, [("Host", "127.0.0.1:3000"), *headers], body, source_ip=source_ip
    )
    return gw.handle(request).response


def header(resp, name):
    return next((v for k, v in resp.headers if k.lower() == name.lower()), None)


def ask_token(gw, body, headers=None, source_ip="127.0.0.1"):
    sent = (
        [("Content-Type", "application/json"), ("Origin", ORIGIN)] if headers is None else headers
    )
    return call(gw, "POST", "/console/dev-token", sent, json.dumps(body).encode(), source_ip)


def test_the_page_and_its_files_are_served_with_a_content_security_policy():
    gw = gateway(dev_console())
    page = call(gw, "GET", "/console/")
    assert page.status == 200
    assert header(page, "content-type").startswith("text/html")
    assert b'<script type="module" src="app.js">' in page.body
    policy = header(page, "content-security-policy")
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert header(page, "x-content-type-options") == "nosniff"
    assert header(page, "referrer-policy") == "no-referrer"
    for name, kind in (("app.js", "text/javascript"), ("console.css", "text/css")):
        asset = call(gw, "GET", f"/console/{name}")
        assert asset.status == 200
        assert header(asset, "content-type").startswith(kind)
        assert header(asset, "content-security-policy") == policy


def test_the_bare_path_redirects_to_the_folder_and_unknown_files_are_404_problems():
    gw = gateway(dev_console())
    moved = call(gw, "GET", "/console")
    assert moved.status == 308
    assert header(moved, "location") == "/console/"
    for target in ("/console/nope.js", "/console/../template.yaml", "/console/%2e%2e/README.md"):
        missing = call(gw, "GET", target)
        assert missing.status == 404, target
        assert header(missing, "content-type") == "application/problem+json"
    wrong = call(gw, "DELETE", "/console/app.js")
    assert wrong.status == 405
    assert header(wrong, "allow") == "GET, HEAD"


def test_config_json_offers_the_dev_sign_in_and_holds_no_secret():
    gw = gateway(dev_console())
    answer = call(gw, "GET", "/console/config.json")
    assert answer.status == 200
    assert json.loads(answer.body) == {"api": "", "devSignIn": True}
    assert DEFAULT_DEV_JWT_SECRET.encode() not in answer.body


def test_with_an_identity_provider_the_page_signs_in_there_and_no_dev_token_is_given():
    oidc = OidcConfig("https://idp.example.com/pool", "console-client")
    gw = gateway(Console(oidc=oidc))
    config = json.loads(call(gw, "GET", "/console/config.json").body)
    assert config["oidc"] == {
        "issuer": "https://idp.example.com/pool",
        "clientId": "console-client",
        "scope": "openid",
    }
    assert "devSignIn" not in config
    policy = header(call(gw, "GET", "/console/"), "content-security-policy")
    assert "connect-src 'self' https://idp.example.com;" in policy
    assert ask_token(gw, {"role": "admin"}).status == 404


def test_the_dev_sign_in_mints_a_token_the_gateway_accepts_for_the_role_asked():
    gw = gateway(dev_console())
    answer = ask_token(gw, {"role": "admin", "sub": "ops-1"})
    assert answer.status == 200
    assert header(answer, "cache-control") == "no-store"
    body = json.loads(answer.body)
    claims = TokenVerifier(secret=DEFAULT_DEV_JWT_SECRET).verify(body["token"], CONFIG).claims
    assert claims["sub"] == "ops-1"
    assert claims["groups"] == ["admin"]
    customer = json.loads(ask_token(gw, {"role": "customer"}).body)
    claims = jwt.decode(customer["token"], options={"verify_signature": False})
    assert claims["sub"] == "dev-customer"
    assert "groups" not in claims


@pytest.mark.parametrize(
    ("body", "headers", "source_ip", "status"),
    [
        ({"role": "admin"}, None, "10.1.2.3", 403),  # not a loopback client
        ({"role": "admin"}, [("Content-Type", "text/plain"), ("Origin", ORIGIN)], None, 403),
        (
            {"role": "admin"},
            [("Content-Type", "application/json"), ("Origin", "http://evil.test")],
            None,
            403,
        ),
        ({"role": "root"}, None, None, 400),
        ({"role": "admin", "sub": "a b"}, None, None, 400),
        ({"role": "admin", "sub": 7}, None, None, 400),
        ([], None, None, 400),
    ],
)
def test_the_dev_sign_in_refuses_what_it_should_with_a_problem(body, headers, source_ip, status):
    gw = gateway(dev_console())
    answer = ask_token(gw, body, headers, source_ip or "127.0.0.1")
    assert answer.status == status
    assert header(answer, "content-type") == "application/problem+json"
    assert b'token"' not in answer.body


def test_the_dev_sign_in_refuses_a_body_that_is_not_json():
    gw = gateway(dev_console())
    sent = [("Content-Type", "application/json")]
    answer = call(gw, "POST", "/console/dev-token", sent, b"{not json")
    assert answer.status == 400


def test_the_local_platform_gives_the_console_the_sign_in_its_gateway_trusts():
    from funcmart_hosts.gateway.template import load
    from funcmart_hosts.local.platform import console_for
    from funcmart_hosts.local.resources import Deployment

    dev = LocalSettings()
    tpl = load(dev.template_path)
    assert console_for(dev, Deployment(tpl, dev, "", None, None)).config()["devSignIn"]
    idp = LocalSettings.load({"FUNCMART_JWKS_URL": "https://idp.example.com/jwks.json"})
    config = console_for(idp, Deployment(tpl, idp, "", None, None)).config()
    assert config["oidc"]["issuer"] == "https://funcmart.local/"  # the authorizer's issuer
    assert config["oidc"]["clientId"] == "funcmart"  # its audience, unless one is set
    named = LocalSettings.load(
        {
            "FUNCMART_JWKS_URL": "https://idp.example.com/jwks.json",
            "FUNCMART_CONSOLE_CLIENT_ID": "c1",
        }
    )
    assert (
        console_for(named, Deployment(tpl, named, "", None, None)).config()["oidc"]["clientId"]
        == "c1"
    )


def test_without_a_console_the_gateway_serves_none():
    verifier = TokenVerifier(secret=DEFAULT_DEV_JWT_SECRET)
    gw = Gateway(RouteTable([]), Invoker({}), verifier, {"Jwt": CONFIG})
    assert call(gw, "GET", "/console/").status == 404
    assert (
        call(gw, "POST", "/console/dev-token", [("Content-Type", "application/json")], b"{}").status
        == 404
    )


def test_the_runbook_shows_pictures_that_exist_and_names_every_file_to_serve():
    from funcmart_hosts.gateway.template import ROOT
    from funcmart_hosts.local.console import CONSOLE_DIR

    doc = (ROOT / "docs" / "operations.md").read_text()
    pictures = set(re.findall(r"console-[a-z0-9-]+\.png", doc))
    assert {"console-orders.png", "console-order.png", "console-dead-letters.png"} <= pictures
    assert all((ROOT / "docs" / p).is_file() for p in pictures)
    for served in CONSOLE_DIR.iterdir():
        assert f"--from-file=console/{served.name}" in doc, served.name
