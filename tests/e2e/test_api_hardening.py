"""Bad input and bad callers over real HTTP: tokens, ownership, roles, body limits, odd path
ids, CORS, rate limits and the API's own documentation, through the local gateway on
DynamoDB Local and the real Redis."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx
import jwt
import pytest

from funcmart_hosts.gateway.auth import JwtConfig, mint_token
from funcmart_hosts.gateway.template import ROOT, load
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support.platforms import local_settings

pytestmark = [pytest.mark.dynamodb, pytest.mark.redis]
PROBLEM = "application/problem+json"
ALLOWED_ORIGIN = "http://localhost:3000"
WRITES_PER_MINUTE = 5  # low, so that the rate-limit test reaches it quickly


@pytest.fixture(scope="module")
def platform(make_table, dynamodb_endpoint, moto_endpoint, redis_url) -> Iterator[LocalPlatform]:
    settings = local_settings(
        "hard",
        make_table(),
        dynamodb_endpoint,
        moto_endpoint,
        redis_url,
        **{"WritesRateLimit": f"{WRITES_PER_MINUTE}/60s"},
    )
    with LocalPlatform(settings) as running:
        yield running


@pytest.fixture(scope="module")
def api(platform: LocalPlatform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def jwt_config(platform: LocalPlatform) -> JwtConfig:
    return default_jwt_config(load(platform.settings.template_path), platform.settings)


@pytest.fixture(scope="module")
def token(platform: LocalPlatform, jwt_config: JwtConfig) -> Callable[..., str]:
    def make(role: str = "customer", sub: str | None = None, **claims: object) -> str:
        groups = ["admin"] if role == "admin" else []
        sub = sub or f"{role}-{uuid.uuid4().hex[:8]}"
        return mint_token(platform.settings.jwt_secret, jwt_config, sub, groups, **claims)

    return make


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


@pytest.fixture(scope="module")
def product(api: httpx.Client, token: Callable[..., str]) -> str:
    body = {"name": "Hardened", "category": "books", "price": {"amount": 700, "currency": "EUR"}}
    resp = api.post("/products", json={**body, "stock": 50}, headers=bearer(token("admin")))
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def assert_problem(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


# ------------------------------------------------------------------------------ tokens
def _forged(jwt_config: JwtConfig, secret: str, **overrides: object) -> str:
    now = int(time.time())
    claims = {
        "iss": jwt_config.issuer,
        "aud": jwt_config.audiences[0],
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return jwt.encode(claims, secret, algorithm="HS256")


def _alg_none(jwt_config: JwtConfig) -> str:
    def part(data: dict) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        import base64

        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    claims = {"iss": jwt_config.issuer, "aud": jwt_config.audiences[0], "sub": "mallory"}
    claims["exp"] = int(time.time()) + 600
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    "kind",
    ["alg-none", "wrong-signature", "expired", "wrong-audience", "wrong-issuer", "garbage", "none"],
)
def test_a_token_that_is_not_ours_is_401(api, platform, jwt_config, kind):
    secret = platform.settings.jwt_secret
    tokens = {
        "alg-none": _alg_none(jwt_config),
        "wrong-signature": _forged(jwt_config, "another-secret-of-at-least-thirty-two-bytes"),
        "expired": _forged(jwt_config, secret, iat=int(time.time()) - 7200, exp=1_000_000_000),
        "wrong-audience": _forged(jwt_config, secret, aud="someone-else"),
        "wrong-issuer": _forged(jwt_config, secret, iss="https://evil.example/"),
        "garbage": "not-a-jwt",
    }
    headers = bearer(tokens[kind]) if kind in tokens else {}
    for method, path in [("GET", "/cart"), ("GET", "/orders"), ("POST", "/products")]:
        resp = api.request(method, path, headers=headers, json={} if method == "POST" else None)
        assert_problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer")


# --------------------------------------------------------------------------- ownership
def test_another_customers_order_is_404_as_if_it_did_not_exist(api, token, product):
    alice, bob = (
        token(sub=f"alice-{uuid.uuid4().hex[:6]}"),
        token(sub=f"bob-{uuid.uuid4().hex[:6]}"),
    )
    order = {"lines": [{"productId": product, "quantity": 1}], "paymentToken": "tok_ok"}
    placed = api.post(
        "/orders", json=order, headers={**bearer(alice), "Idempotency-Key": uuid.uuid4().hex}
    )
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    # Bob sees neither the order nor a hint that it exists: the same 404 as a made-up id.
    theirs = assert_problem(api.get(f"/orders/{order_id}", headers=bearer(bob)), 404)
    made_up = assert_problem(api.get(f"/orders/{uuid.uuid4().hex}", headers=bearer(bob)), 404)
    assert theirs["title"] == made_up["title"]
    assert theirs["type"] == made_up["type"]
    assert_problem(api.post(f"/orders/{order_id}/cancel", headers=bearer(bob)), 404)
    assert order_id not in json.dumps(api.get("/orders", headers=bearer(bob)).json())
    # Alice still can, and the order was not cancelled by Bob's attempt.
    mine = api.get(f"/orders/{order_id}", headers=bearer(alice))
    assert mine.status_code == 200
    assert mine.json()["status"] != "CANCELLED"


def test_a_customer_cannot_list_another_customers_orders(api, token):
    assert_problem(api.get("/orders", params={"customer": "someone"}, headers=bearer(token())), 403)


# ------------------------------------------------------------------------------- roles
def test_catalog_writes_as_a_customer_are_403(api, token, product):
    me = bearer(token())
    new = {"name": "X", "category": "books", "price": {"amount": 1, "currency": "EUR"}}
    assert_problem(api.post("/products", json=new, headers=me), 403)
    assert_problem(
        api.patch(f"/products/{product}", json={"version": 1, "name": "Y"}, headers=me), 403
    )
    assert_problem(api.put(f"/products/{product}/stock", json={"set": 0}, headers=me), 403)
    assert_problem(api.delete(f"/products/{product}", headers=me), 403)
    assert api.get(f"/products/{product}").json()["name"] == "Hardened"


# --------------------------------------------------------------------------- body size
@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/cart/items/{p}"), ("POST", "/orders"), ("POST", "/products")],
)
def test_a_body_over_the_configured_limit_is_413(api, token, product, method, path):
    limit = 65536  # MAX_BODY_BYTES in template.yaml's Globals
    body = json.dumps({"quantity": 1, "pad": "x" * (limit + 10)})
    resp = api.request(
        method,
        path.format(p=product),
        content=body,
        headers={**bearer(token("admin")), "Content-Type": "application/json"},
    )
    assert_problem(resp, 413)


# ------------------------------------------------------------- media types and body text
NEW = (
    b'{"name": "Caf\xc3\xa9 mug", "category": "kitchen", "price": {"amount": 1, "currency": "EUR"}}'
)


@pytest.mark.parametrize(
    "content_type",
    ["Application/JSON", "application/vnd.api+json", "application/json; Charset=UTF-8"],
)
def test_any_json_media_type_creates_the_product(api, token, content_type):
    resp = api.post(
        "/products",
        content=NEW,
        headers={**bearer(token("admin")), "Content-Type": content_type},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["name"] == "Caf\u00e9 mug"


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", NEW.replace(b"\xc3\xa9", b"\xe9"), 400),  # Latin-1, not UTF-8
        ("application/json", NEW.replace(b"\xc3\xa9", b"\xff"), 400),
        ("application/json; charset=iso-8859-1", NEW.replace(b"\xc3\xa9", b"\xe9"), 415),
        ("text/plain", NEW, 415),
        ("application/json", NEW.replace(b'"kitchen"', b'"kitchen", "name": "Other"'), 400),
    ],
    ids=["latin-1", "byte-ff", "declared-latin-1", "text-plain", "duplicate-key"],
)
def test_a_body_not_sent_as_utf8_json_is_refused_never_altered(
    api, token, content_type, body, status
):
    resp = api.post(
        "/products",
        content=body,
        headers={**bearer(token("admin")), "Content-Type": content_type},
    )
    assert_problem(resp, status)


# ------------------------------------------------------------------------ odd path ids
ODD_IDS = [
    "' OR '1'='1",
    "1; DROP TABLE products",
    "../../etc/passwd",
    "..%2F..%2Fetc",
    "PRODUCT#x",
    "${jndi:ldap://127.0.0.1/a}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "ünïcødé-ïd",
    "😀🛒",
    "\u202e\u0000null",
    "a" * 3000,
    " ",
    "%",
    "*",
]


@pytest.mark.parametrize("odd", ODD_IDS, ids=lambda s: repr(s[:20]))
def test_odd_path_ids_are_answered_without_a_server_error(api, token, odd):
    admin, me = bearer(token("admin")), bearer(token())
    pid = quote(odd, safe="")
    calls = [
        ("GET", f"/products/{pid}", {}, None, 404),
        ("GET", f"/orders/{pid}", me, None, 404),
        ("POST", f"/orders/{pid}/cancel", me, None, 404),
        ("PUT", f"/cart/items/{pid}", me, {"quantity": 1}, 404),
        ("PATCH", f"/products/{pid}", admin, {"version": 1, "name": "n"}, 404),
        ("PUT", f"/products/{pid}/stock", admin, {"set": 1}, 404),
        ("DELETE", f"/products/{pid}", admin, None, 404),
        ("DELETE", f"/cart/items/{pid}", me, None, None),  # idempotent: 204 either way
    ]
    for method, path, headers, body, expected in calls:
        resp = api.request(method, path, headers=headers, json=body)
        assert resp.status_code < 500, (method, path, resp.status_code, resp.text)
        if expected is not None and resp.status_code != 429:
            assert resp.status_code in (expected, 400), (method, path, resp.text)


# -------------------------------------------------------------------------------- CORS
def test_a_preflight_from_an_allowed_origin_is_answered_by_the_gateway(api):
    resp = api.options(
        "/cart/items/abc",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert resp.status_code == 204
    assert resp.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "PUT" in resp.headers["access-control-allow-methods"]
    assert "authorization" in resp.headers["access-control-allow-headers"].lower()
    assert int(resp.headers["access-control-max-age"]) > 0


def test_a_preflight_from_another_origin_gets_no_permission(api):
    resp = api.options(
        "/cart",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert resp.status_code == 204
    assert "access-control-allow-origin" not in resp.headers


def test_answers_to_an_allowed_origin_expose_the_rate_limit_headers(api, product):
    resp = api.get(f"/products/{product}", headers={"Origin": ALLOWED_ORIGIN})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    exposed = resp.headers["access-control-expose-headers"].lower()
    assert "ratelimit-remaining" in exposed
    assert "retry-after" in exposed
    other = api.get(f"/products/{product}", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_the_gateway_cors_is_the_templates(platform):
    tpl = load(platform.settings.template_path)
    spec = tpl.cors
    assert spec is not None
    config = platform.gateway.cors
    assert config is not None
    default = tpl.raw["Parameters"]["CorsAllowOrigins"]["Default"]
    assert config.allow_origins == tuple(default.split(","))
    assert config.allow_methods == spec.allow_methods
    assert config.expose_headers == spec.expose_headers


# ------------------------------------------------------------------------- rate limits
def test_a_caller_over_the_write_limit_gets_429_with_retry_after(api, token, product):
    me, other = bearer(token()), bearer(token())
    answers = [
        api.put(f"/cart/items/{product}", json={"quantity": 1}, headers=me)
        for _ in range(WRITES_PER_MINUTE + 1)
    ]
    assert [a.status_code for a in answers] == [200] * WRITES_PER_MINUTE + [429]
    assert [int(a.headers["ratelimit-remaining"]) for a in answers[:-1]] == list(
        range(WRITES_PER_MINUTE - 1, -1, -1)
    )
    refused = answers[-1]
    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == str(WRITES_PER_MINUTE)
    assert refused.headers["ratelimit-policy"] == f"{WRITES_PER_MINUTE};w=60"
    # another caller has a budget of its own, and reads are another class
    assert api.put(f"/cart/items/{product}", json={"quantity": 1}, headers=other).status_code == 200
    assert api.get("/cart", headers=me).status_code == 200


# ----------------------------------------------------------------------- docs, health
def test_the_gateway_serves_the_openapi_document_and_a_local_swagger_ui(api):
    doc = api.get("/openapi.json")
    assert doc.status_code == 200
    assert doc.json() == json.loads((ROOT / "docs" / "openapi.json").read_text())
    page = api.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "https://" not in page.text
    assert "http://" not in page.text
    for asset in ("/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"):
        got = api.get(asset)
        assert got.status_code == 200
        assert len(got.content) > 10_000


def test_health_reports_both_dependencies(api):
    resp = api.get("/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"dynamodb": "ok", "redis": "ok"}
    assert body["version"]
