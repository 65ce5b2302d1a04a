"""With FUNCMART_JWKS_URL, the local authorizer verifies RS256 tokens against a JWKS served
over HTTP (here on 127.0.0.1), as API Gateway does with a Cognito pool, and refuses dev tokens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from funcmart_hosts.gateway.auth import AuthError, TokenVerifier, mint_token
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET
from funcmart_hosts.local.resources import JwtConfig

CONFIG = JwtConfig(issuer="https://idp.example/pool", audiences=("funcmart",))
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [jwk | {"kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def rs256(key=KEY, kid="k1", **overrides):
    now = int(time.time())
    claims = {"iss": CONFIG.issuer, "aud": "funcmart", "sub": "u1", "iat": now, "exp": now + 60}
    claims.update(overrides)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_a_token_signed_by_a_jwks_key_verifies(jwks_url):
    verified = TokenVerifier(jwks_url=jwks_url).verify(rs256(), CONFIG)
    assert verified.claims["sub"] == "u1"


def test_a_token_signed_by_another_key_is_refused(jwks_url):
    with pytest.raises(AuthError):
        TokenVerifier(jwks_url=jwks_url).verify(rs256(key=OTHER_KEY), CONFIG)
    with pytest.raises(AuthError):
        TokenVerifier(jwks_url=jwks_url).verify(rs256(kid="unknown"), CONFIG)


def test_dev_tokens_are_refused_when_a_jwks_is_configured(jwks_url):
    dev = mint_token(DEFAULT_DEV_JWT_SECRET, CONFIG, "u1", ["admin"])
    with pytest.raises(AuthError) as info:
        TokenVerifier(jwks_url=jwks_url).verify(dev, CONFIG)
    assert "HS256" in info.value.description
