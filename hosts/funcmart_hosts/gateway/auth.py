"""The HTTP API's JWT authorizer: bearer tokens verified against an HS256 secret or a JWKS
URL, as API Gateway verifies them.

Verification follows API Gateway's JWT authorizer: the token comes from the identity source
(the Authorization header, with or without "Bearer "); its signature must check out against
the HS256 secret or, when a JWKS URL is given, a key of that JWKS (RSA, as API Gateway
requires); `iss` must equal the issuer; `aud` (or `client_id`) must be one of the audiences;
`exp` must be in the future (`nbf`, `iat` are checked when present); `alg: none` never passes.
A failure is a 401; a token without a scope the route requires is a 403.

Times are compared with a leeway of `CLOCK_SKEW_LEEWAY_SECONDS` (60 s) either way, for clocks
that differ between the issuer and this host: a token is taken up to 60 s after its `exp`,
and from 60 s before its `nbf` or `iat`. The JWKS is fetched over https only (plain http to
a loopback address excepted, for local issuers): its keys decide who is an admin."""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from funcmart_hosts.gateway.responses import header_safe

if TYPE_CHECKING:
    pass


CLOCK_SKEW_LEEWAY_SECONDS = 60


def _jwt() -> Any:
    """PyJWT (and the cryptography it loads), imported when a token is first verified or
    minted: a function whose routes are all public never loads it."""
    import jwt

    return jwt


HS_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "RS384", "RS512"]


@dataclass(frozen=True)
class JwtConfig:
    """A resolved JWT authorizer: what `iss` must be and which audiences are accepted."""

    issuer: str
    audiences: tuple[str, ...]
    header: str = "authorization"  # from IdentitySource $request.header.<Name>


class AuthError(Exception):
    """A request the authorizer turns away."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error  # RFC 6750 error code for WWW-Authenticate
        self.description = description

    @property
    def www_authenticate(self) -> str:
        if self.error == "missing_token":
            return "Bearer"
        # The description may quote the token (its alg, its kid, PyJWT's words about it):
        # nothing of it may end the header or the quoted string.
        safe = header_safe(self.description.replace('"', "'").replace("\\", "/"), 300)
        return f'Bearer error="{self.error}", error_description="{safe}"'


@dataclass(frozen=True)
class Verified:
    claims: dict[str, Any]
    scopes: list[str] | None  # set only for routes that require scopes, as API Gateway does


def token_from(header_value: str | None) -> str:
    """The token in an Authorization header value; API Gateway accepts it with or without
    the "Bearer " prefix."""
    if not header_value or not header_value.strip():
        raise AuthError(401, "missing_token", "a bearer token is required")
    value = header_value.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        value = rest.strip()
    if not value:
        raise AuthError(401, "invalid_token", "the bearer token is empty")
    return value


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    raw = claims.get("scp", claims.get("scope"))
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return str(raw).split() if raw else []


class TokenVerifier:
    def __init__(self, secret: str | None = None, jwks_url: str | None = None) -> None:
        if not secret and not jwks_url:
            raise ValueError("a dev secret or a JWKS URL is needed to verify tokens")
        self._secret = secret
        self._jwks_url = require_https(jwks_url) if jwks_url else None
        self._jwks_client: Any = None

    @property
    def _jwks(self) -> Any:
        if self._jwks_url and self._jwks_client is None:
            self._jwks_client = _jwt().PyJWKClient(self._jwks_url, timeout=5)
        return self._jwks_client

    def verify(
        self, token: str, config: JwtConfig, required_scopes: Sequence[str] = ()
    ) -> Verified:
        jwt = _jwt()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(401, "invalid_token", "the token is not a JWT") from exc
        alg = str(header.get("alg", "none"))
        allowed = JWKS_ALGORITHMS if self._jwks else HS_ALGORITHMS
        if alg not in allowed:
            raise AuthError(
                401, "invalid_token", f"tokens signed with {alg[:40]!r} are not accepted"
            )
        key: Any
        try:
            key = self._jwks.get_signing_key_from_jwt(token).key if self._jwks else self._secret
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=allowed,
                issuer=config.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
                leeway=CLOCK_SKEW_LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError(401, "invalid_token", "the token has expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError(401, "invalid_token", "the token's issuer is not accepted") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthError(401, "invalid_token", f"no key to verify the token: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(401, "invalid_token", f"the token is not valid: {exc}") from exc
        if not _audience_ok(claims, config.audiences):
            raise AuthError(401, "invalid_token", "the token's audience is not accepted")
        if not required_scopes:
            return Verified(claims, None)
        scopes = token_scopes(claims)
        if not set(scopes) & set(required_scopes):
            raise AuthError(
                403,
                "insufficient_scope",
                f"the route needs one of the scopes {list(required_scopes)}",
            )
        return Verified(claims, scopes)


def _audience_ok(claims: Mapping[str, Any], audiences: Sequence[str]) -> bool:
    aud = claims.get("aud")
    given = aud if isinstance(aud, list) else [aud] if aud is not None else []
    if not given and claims.get("client_id") is not None:
        given = [claims["client_id"]]  # Cognito access tokens carry client_id, not aud
    return bool(set(map(str, given)) & set(audiences))


def mint_token(
    secret: str,
    config: JwtConfig,
    subject: str,
    groups: Sequence[str] = (),
    ttl_seconds: int = 3600,
    now: float | None = None,
    **extra: Any,
) -> str:
    """An HS256 dev token the local gateway accepts (and only the local gateway)."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": config.issuer,
        "aud": config.audiences[0] if config.audiences else None,
        "sub": subject,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "jti": str(uuid.uuid4()),
        "token_use": "access",
    }
    if groups:
        claims["groups"] = list(groups)
    claims.update(extra)
    token: str = _jwt().encode(claims, secret, algorithm="HS256")
    return token


def require_https(url: str) -> str:
    """`url` if it is https, or http to a loopback address; ValueError otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise ValueError(
        f"the JWKS URL must be https (plain http only to a loopback address), got {url[:200]!r}"
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
