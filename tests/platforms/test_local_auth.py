"""The local JWT authorizer accepts what API Gateway's would, and nothing else."""

import base64
import json
import time

import jwt
import pytest

from funcmart_hosts.gateway.auth import (
    CLOCK_SKEW_LEEWAY_SECONDS,
    AuthError,
    TokenVerifier,
    mint_token,
    token_from,
)
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET
from funcmart_hosts.local.resources import JwtConfig

SECRET = DEFAULT_DEV_JWT_SECRET
CONFIG = JwtConfig(issuer="https://funcmart.local/", audiences=("funcmart",))
VERIFIER = TokenVerifier(secret=SECRET)


def claims(**overrides):
    now = int(time.time())
    base = {"iss": CONFIG.issuer, "aud": "funcmart", "sub": "alice", "iat": now, "exp": now + 60}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload, secret=SECRET, alg="HS256"):
    return jwt.encode(payload, secret, algorithm=alg)


def rejected(token, status=401, config=CONFIG, scopes=()):
    with pytest.raises(AuthError) as info:
        VERIFIER.verify(token, config, scopes)
    assert info.value.status == status
    return info.value


def test_a_minted_admin_token_verifies_with_its_groups():
    token = mint_token(SECRET, CONFIG, "root", ["admin"], ttl_seconds=60)
    verified = VERIFIER.verify(token, CONFIG)
    assert verified.claims["sub"] == "root"
    assert verified.claims["groups"] == ["admin"]
    assert verified.scopes is None


def test_an_expired_token_is_refused():
    # expired for longer than the clock-skew leeway
    err = rejected(sign(claims(exp=int(time.time()) - CLOCK_SKEW_LEEWAY_SECONDS - 5)))
    assert "expired" in err.description
    assert err.www_authenticate.startswith('Bearer error="invalid_token"')


def test_a_token_signed_with_another_key_is_refused():
    rejected(sign(claims(), secret="another-secret-that-is-long-enough-for-hs256"))


def test_wrong_audience_or_issuer_is_refused():
    rejected(sign(claims(aud="someone-else")))
    rejected(sign(claims(iss="https://evil.example/")))
    rejected(sign(claims(exp=None)))  # exp is required


def test_cognito_access_tokens_match_on_client_id():
    token = sign(claims(aud=None, client_id="funcmart"))
    assert VERIFIER.verify(token, CONFIG).claims["client_id"] == "funcmart"


def test_alg_none_is_refused():
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(groups=['admin']))}."
    err = rejected(unsigned)
    assert "none" in err.description


def test_other_algorithms_are_refused_for_the_dev_secret():
    rejected(sign(claims(), secret=SECRET * 2, alg="HS512"))


def test_garbage_is_refused():
    rejected("not-a-jwt")


def test_route_scopes_need_one_matching_scope():
    token = sign(claims(scope="catalog/read orders/write"))
    assert VERIFIER.verify(token, CONFIG, ["orders/write"]).scopes == [
        "catalog/read",
        "orders/write",
    ]
    err = rejected(token, status=403, scopes=["admin/all"])
    assert err.error == "insufficient_scope"


def test_the_token_comes_with_or_without_the_bearer_prefix():
    assert token_from("Bearer abc") == "abc"
    assert token_from("bearer   abc ") == "abc"
    assert token_from("abc") == "abc"
    for missing in (None, "", "   "):
        with pytest.raises(AuthError) as info:
            token_from(missing)
        assert info.value.www_authenticate == "Bearer"


def test_no_secret_shows_in_the_local_settings_repr() -> None:
    from funcmart_hosts.local.config import LocalSettings

    local = LocalSettings.load(
        {
            "FUNCMART_DEV_JWT_SECRET": "local-secret-do-not-print-me-32-bytes",
            "REDIS_URL": "redis://:redis-password-here@127.0.0.1:6379/0",
        }
    )
    assert "do-not-print-me" not in repr(local)
    assert "redis-password-here" not in repr(local)
    assert "127.0.0.1:6379" in repr(local)
