"""The JWT authorizer's edges: a documented clock-skew leeway on exp, nbf and iat, and a JWKS
fetched over https only (loopback excepted)."""

from __future__ import annotations

import time

import pytest

from funcmart_hosts.gateway.auth import (
    CLOCK_SKEW_LEEWAY_SECONDS,
    AuthError,
    JwtConfig,
    TokenVerifier,
    mint_token,
)

SECRET = "jwt-edges-test-secret-of-at-least-32-bytes"
CONFIG = JwtConfig("https://issuer.example", ("funcmart",))
VERIFIER = TokenVerifier(secret=SECRET)


def token(**times: int) -> str:
    now = int(time.time())
    return mint_token(SECRET, CONFIG, "alice", now=now, **{k: now + v for k, v in times.items()})


@pytest.mark.parametrize(
    "times",
    [{"iat": 20}, {"nbf": 20}, {"exp": -20}, {"iat": 20, "nbf": 20}],
    ids=["iat a little ahead", "nbf a little ahead", "exp a little behind", "both ahead"],
)
def test_a_clock_a_little_off_is_within_the_leeway(times: dict[str, int]) -> None:
    assert VERIFIER.verify(token(**times), CONFIG).claims["sub"] == "alice"


@pytest.mark.parametrize(
    "times",
    [{"nbf": CLOCK_SKEW_LEEWAY_SECONDS + 30}, {"exp": -(CLOCK_SKEW_LEEWAY_SECONDS + 30)}],
    ids=["nbf far ahead", "expired"],
)
def test_a_clock_far_off_is_refused(times: dict[str, int]) -> None:
    with pytest.raises(AuthError) as refused:
        VERIFIER.verify(token(**times), CONFIG)
    assert refused.value.status == 401


@pytest.mark.parametrize(
    "url",
    ["http://issuer.example/.well-known/jwks.json", "http://10.0.0.8/jwks", "ftp://x/jwks"],
)
def test_a_jwks_over_plain_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        TokenVerifier(jwks_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://issuer.example/.well-known/jwks.json",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
    ],
)
def test_a_jwks_over_https_or_loopback_is_taken(url: str) -> None:
    TokenVerifier(jwks_url=url)  # no request is made until a token needs a key
