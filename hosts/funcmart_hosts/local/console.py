"""The operator console on the local gateway: the static files of console/ at /console/.

The console is a static page that calls the public API with the operator's bearer token; it
has no privileged way in. Here the local platform serves its files (as a bucket, a small
web server or the cluster's Gateway would in a deployment, see docs/operations.md) and two
things only a local platform can know:

- /console/config.json: how the page signs in. With a JWKS URL (FUNCMART_JWKS_URL) the
  gateway trusts an identity provider, and the page signs in there (OIDC authorization code
  with PKCE, the issuer the API's authorizer trusts, FUNCMART_CONSOLE_CLIENT_ID as its
  client). Otherwise the gateway trusts the dev secret, and the page offers a dev sign-in.
- POST /console/dev-token: that dev sign-in, a token for a chosen role and subject, minted as
  `make token` mints it. Only with the dev secret (never with a JWKS URL), only to a loopback
  client, only for a JSON request from the console's own origin (a page elsewhere cannot make
  a browser send one without a preflight, which nothing here answers with permission).

Every answer carries a Content-Security-Policy that lets the page load its own files and talk
to its own origin (and the identity provider's) only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from funcmart_hosts.gateway.events import HttpRequest, request_id
from funcmart_hosts.gateway.responses import HttpResponse, problem_response
from funcmart_hosts.gateway.template import ROOT

CONSOLE_DIR = ROOT / "console"
PREFIX = "/console"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSET = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\.(html|css|js|svg)$")
_SUBJECT = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
DEV_TOKEN_TTL_SECONDS = 3600

# Mints a dev token: (subject, groups, ttl seconds) -> JWT.
Minter = Callable[[str, list[str], int], str]


@dataclass(frozen=True)
class OidcConfig:
    """The identity provider the API's authorizer trusts, as the page needs it."""

    issuer: str
    client_id: str
    scope: str = "openid"


def csp(connect_origins: tuple[str, ...] = ()) -> str:
    connect = " ".join(("'self'", *connect_origins))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Console:
    """Answers GET /console, /console/<file>, /console/config.json and POST
    /console/dev-token; None for every other request."""

    def __init__(
        self,
        *,
        oidc: OidcConfig | None = None,
        minter: Minter | None = None,
        directory: Path = CONSOLE_DIR,
    ) -> None:
        if (oidc is None) == (minter is None):
            raise ValueError("the console signs in with an identity provider or dev tokens")
        self.oidc = oidc
        self.minter = minter
        self.directory = directory
        self.policy = csp((_origin(oidc.issuer),) if oidc else ())

    def config(self) -> dict[str, Any]:
        """config.json: what the page needs to sign in; never a secret."""
        if self.oidc is not None:
            return {
                "api": "",
                "oidc": {
                    "issuer": self.oidc.issuer,
                    "clientId": self.oidc.client_id,
                    "scope": self.oidc.scope,
                },
            }
        return {"api": "", "devSignIn": True}

    def serve(self, request: HttpRequest) -> HttpResponse | None:
        path = request.raw_path
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        name = path.removeprefix(PREFIX).lstrip("/")
        if name == "dev-token" and request.method == "POST":
            return self._secured(self._dev_token(request), "no-store")
        if request.method not in ("GET", "HEAD"):
            refused = problem_response(
                405,
                "Method not allowed",
                f"{path} answers GET",
                request_id(),
                [("Allow", "GET, HEAD")],
            )
            return self._secured(refused, "no-store")
        if path == PREFIX:  # relative links in the page need the trailing slash
            return self._secured(HttpResponse(308, [("Location", PREFIX + "/")]), "no-store")
        if name == "config.json":
            body = json.dumps(self.config()).encode()
            return self._secured(HttpResponse(200, [("Content-Type", "application/json")], body))
        return self._secured(self._file(name or "index.html"))

    def _file(self, name: str) -> HttpResponse:
        if not _ASSET.fullmatch(name) or not (self.directory / name).is_file():
            return self._problem(404, "Not found", f"the console has no file {name[:80]!r}")
        kind = _TYPES[Path(name).suffix]
        return HttpResponse(200, [("Content-Type", kind)], (self.directory / name).read_bytes())

    def _dev_token(self, request: HttpRequest) -> HttpResponse:
        if self.minter is None:
            detail = "this gateway trusts an identity provider: sign in there"
            return self._problem(404, "Not found", detail)
        refused = self._dev_refusal(request)
        if refused is not None:
            return self._problem(403, "Forbidden", refused)
        try:
            asked = json.loads(request.body or b"{}")
        except ValueError:
            return self._problem(400, "Bad request", "the body is not JSON")
        role = asked.get("role") if isinstance(asked, dict) else None
        sub = asked.get("sub") if isinstance(asked, dict) else None
        if role not in ("admin", "customer"):
            return self._problem(400, "Bad request", "role must be 'admin' or 'customer'")
        if sub in (None, ""):
            sub = f"dev-{role}"
        if not isinstance(sub, str) or not _SUBJECT.fullmatch(sub):
            detail = "sub must be 1-64 letters, digits or . _ @ -"
            return self._problem(400, "Bad request", detail)
        groups = ["admin"] if role == "admin" else []
        token = self.minter(sub, groups, DEV_TOKEN_TTL_SECONDS)
        body = {"token": token, "sub": sub, "role": role, "expiresIn": DEV_TOKEN_TTL_SECONDS}
        return HttpResponse(200, [("Content-Type", "application/json")], json.dumps(body).encode())

    @staticmethod
    def _dev_refusal(request: HttpRequest) -> str | None:
        """Why a dev token is refused to this request, or None."""
        try:
            loopback = ipaddress.ip_address(request.source_ip).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return "dev tokens are given to loopback clients only"
        kind = (request.header("content-type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            return "ask for a dev token with a JSON body (Content-Type: application/json)"
        origin = request.header("origin")
        host = request.header("host")
        if origin is not None and (host is None or urlsplit(origin).netloc != host):
            return "dev tokens are given to the console's own origin only"
        return None

    def _secured(self, response: HttpResponse, cache: str = "no-cache") -> HttpResponse:
        response.headers += [
            ("Content-Security-Policy", self.policy),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", cache),
        ]
        return response

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> HttpResponse:
        return problem_response(status, title, detail, request_id())
