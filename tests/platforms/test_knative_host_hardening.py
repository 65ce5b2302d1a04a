"""The Knative host's start-up refusals and its reading of X-Forwarded-For."""

from __future__ import annotations

import pytest

from funcmart.settings import SettingsError
from funcmart_hosts.knative.host import KnativeSettings, client_address
from funcmart_hosts.local.config import DEFAULT_DEV_JWT_SECRET, LocalSettings

BASE = {
    "FUNCMART_HANDLER": "get_order.handler",
    "FUNCMART_TRIGGER": "http",
    "FUNCMART_ROUTES": '[{"route": "GET /orders/{orderId}", "public": false}]',
    "FUNCMART_JWT_ISSUER": "https://issuer.test/",
    "FUNCMART_JWT_AUDIENCE": "funcmart",
}


@pytest.mark.parametrize(
    "secret",
    [
        "replace-me-with-at-least-32-random-bytes-of-secret",  # the old placeholder
        DEFAULT_DEV_JWT_SECRET,
        "short-secret",
        "x" * 31,
    ],
)
def test_the_host_refuses_a_public_or_short_secret(secret: str) -> None:
    with pytest.raises(SettingsError):
        KnativeSettings.load({**BASE, "FUNCMART_JWT_SECRET": secret})


def test_the_host_refuses_a_known_secret_even_beside_a_jwks_url() -> None:
    with pytest.raises(SettingsError):
        KnativeSettings.load(
            {
                **BASE,
                "FUNCMART_JWT_SECRET": DEFAULT_DEV_JWT_SECRET,
                "FUNCMART_JWKS_URL": "https://x/",
            }
        )


def test_the_host_starts_with_a_real_secret_or_a_jwks_url() -> None:
    assert KnativeSettings.load({**BASE, "FUNCMART_JWT_SECRET": "k" * 32}).jwt_secret
    assert KnativeSettings.load({**BASE, "FUNCMART_JWKS_URL": "https://idp.test/jwks"}).jwks_url


def test_the_local_gateway_keeps_its_dev_secret_on_loopback() -> None:
    assert LocalSettings.load({}, host="127.0.0.1").jwt_secret == DEFAULT_DEV_JWT_SECRET
    assert LocalSettings.load({}, host="localhost")
    with pytest.raises(SettingsError, match="public"):
        LocalSettings.load({}, host="0.0.0.0")
    with pytest.raises(SettingsError):
        LocalSettings.load({}, host="192.168.1.20")
    own = LocalSettings.load({"FUNCMART_DEV_JWT_SECRET": "z" * 40}, host="0.0.0.0")
    assert own.host == "0.0.0.0"


def settings(**env: str) -> KnativeSettings:
    return KnativeSettings.load({**BASE, "FUNCMART_JWT_SECRET": "k" * 32, **env})


TRUSTED = settings(TRUSTED_PROXY_CIDRS="10.0.0.0/8,127.0.0.0/8")


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (None, "127.0.0.1"),  # no proxy said anything: the peer
        ("203.0.113.7, 10.0.0.5", "203.0.113.7"),
        # The client wrote the left-most entries; the proxies appended the rest.
        ("6.6.6.6, 203.0.113.7, 10.0.0.5, 10.0.0.9", "203.0.113.7"),
        ("not-an-ip, 203.0.113.7, 10.0.0.5", "203.0.113.7"),
        ("10.0.0.5, 10.0.0.6", "10.0.0.5"),  # a caller inside the cluster
        # an entry that is not an address: the hop that received it (the peer) stands for it
        ("203.0.113.7, garbage", "127.0.0.1"),
    ],
)
def test_the_caller_is_the_right_most_untrusted_forwarded_entry(
    forwarded: str | None, expected: str
) -> None:
    assert client_address("127.0.0.1", forwarded, TRUSTED) == expected


def test_with_a_hop_count_the_caller_is_that_many_entries_from_the_right() -> None:
    two = settings(TRUSTED_PROXY_HOPS="2")
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.0.0.5", two) == "203.0.113.7"
    assert client_address("127.0.0.1", "10.0.0.5", two) == "10.0.0.5"  # fewer entries
    with pytest.raises(SettingsError):
        settings(TRUSTED_PROXY_HOPS="-1")


def test_without_trusted_proxies_the_forwarded_header_is_ignored() -> None:
    plain = settings()
    assert client_address("192.0.2.1", "6.6.6.6", plain) == "192.0.2.1"


def test_the_host_is_one_process_per_pod_with_threads_for_blocking_work() -> None:
    assert settings(METRICS_PORT="9464", WORKERS="1").metrics_port == 9464
    assert settings(THREADS="3").threads == 3
    with pytest.raises(SettingsError, match="one process per pod"):
        settings(WORKERS="2")
    with pytest.raises(SettingsError, match="THREADS"):
        settings(THREADS="0")


def test_an_entry_that_is_not_an_address_never_becomes_the_identity() -> None:
    # GIVEN the deployed trust (private ranges) and a client that writes garbage or a huge
    # value as its own X-Forwarded-For entry
    deployed = settings(TRUSTED_PROXY_CIDRS="10.0.0.0/8,127.0.0.0/8")
    for written in ("not-an-ip", "x" * 1000, "198.51.100.7:443", "unknown"):
        # THEN the identity is the hop that received it: an address, the same for all of them
        assert client_address("127.0.0.1", f"{written}, 10.0.1.5", deployed) == "10.0.1.5"
    hops = settings(TRUSTED_PROXY_HOPS="2")
    assert client_address("127.0.0.1", "evil, 10.0.1.5", hops) == "10.0.1.5"
    # AND a real address still is the identity
    assert client_address("127.0.0.1", "203.0.113.9, 10.0.1.5", deployed) == "203.0.113.9"
