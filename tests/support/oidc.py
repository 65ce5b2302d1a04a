"""A minimal OpenID Connect provider on 127.0.0.1 for the console's sign-in tests.

It publishes discovery and a JWKS, approves every authorization request at once for the
subject and groups it is set to (no login page), and gives an RS256 access token for a code
only when the PKCE verifier matches the S256 challenge, the client and the redirect URI of
that code's request. Each code works once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class FakeIssuer:
    def __init__(self, audience: str, client_id: str) -> None:
        self.audience = audience
        self.client_id = client_id
        self.subject = "oidc-admin"
        self.groups: list[str] = ["admin"]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict[str, str]] = {}
        self.exchanged: list[str] = []  # subjects given a token
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIssuer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def discovery(self) -> dict[str, str]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
        }

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": "test", "use": "sig", "alg": "RS256"}]}

    def authorize(self, query: dict[str, str]) -> str:
        """Where the browser goes back to: the redirect URI with a code and the state."""
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            raise ValueError("only the code flow with PKCE S256")
        if query.get("client_id") != self.client_id:
            raise ValueError("unknown client")
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        asked = self.codes.pop(form.get("code", ""), None)
        if asked is None or form.get("grant_type") != "authorization_code":
            raise ValueError("invalid_grant")
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if challenge != asked["code_challenge"]:
            raise ValueError("invalid_grant: PKCE verifier does not match")
        if (
            form.get("client_id") != asked["client_id"]
            or form.get("redirect_uri") != asked["redirect_uri"]
        ):
            raise ValueError("invalid_grant: client or redirect URI differ")
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "groups": self.groups,
            "iat": now,
            "exp": now + 600,
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test"})
        self.exchanged.append(self.subject)
        return {"access_token": token, "token_type": "Bearer", "expires_in": 600}


def _handler(idp: FakeIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            documents = {
                "/.well-known/openid-configuration": idp.discovery,
                "/jwks": idp.jwks,
            }
            if url.path in documents:
                return self._json(200, documents[url.path]())
            if url.path != "/authorize":
                return self._json(404, {"error": "not found"})
            try:
                back = idp.authorize({k: v[0] for k, v in parse_qs(url.query).items()})
            except (ValueError, KeyError) as exc:
                return self._json(400, {"error": str(exc)})
            self.send_response(302)
            self.send_header("Location", back)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path != "/token":
                return self._json(404, {"error": "not found"})
            try:
                return self._json(200, idp.token(form))
            except ValueError as exc:
                return self._json(400, {"error": str(exc)})

    return Handler
