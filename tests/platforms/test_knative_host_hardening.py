"""The Knative host's start-up refusals and its reading of X-Forwarded-For."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from funcmart.settings import SettingsError
from funcmart_hosts.gateway.template import ROOT
from funcmart_hosts.knative.host import (
    ForwardedForRefused,
    KnativeApp,
    KnativeSettings,
    carries_edge_token,
    client_address,
)
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


# What infra/ deploys (infra/config.yaml): queue-proxy and the activator on every request, the
# Gateway on top on a request that carries its token.
DEPLOYED_CONFIG = yaml.safe_load((ROOT / "infra" / "config.yaml").read_text())["data"]
EDGE = "e" * 40
DEPLOYED = settings(
    TRUSTED_PROXY_HOPS=DEPLOYED_CONFIG["TRUSTED_PROXY_HOPS"],
    TRUSTED_EDGE_HOPS=DEPLOYED_CONFIG["TRUSTED_EDGE_HOPS"],
    FUNCMART_EDGE_TOKEN=EDGE,
)
# The addresses of the path (docs/deploy.md, Client addresses): the container's peer is
# queue-proxy; queue-proxy appends the activator's address, the activator Kourier's (or its
# caller's), Kourier nothing, the Gateway the address it received from.
PEER, ACTIVATOR, KOURIER = "127.0.0.1", "10.0.1.9", "10.0.2.2"


def identities(forwarded_by_the_path: str, from_edge: bool) -> set[str]:
    """The identity of ten requests whose callers each wrote a different X-Forwarded-For
    before the path appended `forwarded_by_the_path`."""
    return {
        client_address(
            PEER, f"198.51.100.{n}, 10.0.1.5, {forwarded_by_the_path}", DEPLOYED, from_edge
        )
        for n in range(10)
    }


def test_a_client_through_the_gateway_is_the_address_the_gateway_received_from() -> None:
    assert identities(f"203.0.113.7, {KOURIER}, {ACTIVATOR}", True) == {"203.0.113.7"}
    # and with no entry of its own
    assert client_address(PEER, f"203.0.113.7, {KOURIER}, {ACTIVATOR}", DEPLOYED, True) == (
        "203.0.113.7"
    )


def test_behind_a_load_balancer_that_rewrites_sources_every_client_is_the_balancer() -> None:
    # GIVEN a private (SNAT) load balancer in front of the Gateway: the Gateway's peer is it
    # THEN the callers share its bucket, whatever they write (private ranges are not trusted)
    assert identities(f"10.0.0.17, {KOURIER}, {ACTIVATOR}", True) == {"10.0.0.17"}


def test_a_pod_that_calls_the_gateway_is_its_own_address() -> None:
    assert identities(f"10.0.7.7, {KOURIER}, {ACTIVATOR}", True) == {"10.0.7.7"}


def test_a_pod_that_bypasses_the_gateway_cannot_choose_its_address() -> None:
    # Straight to Kourier (which records nothing): what the activator received from, Kourier
    assert identities(f"{KOURIER}, {ACTIVATOR}", False) == {KOURIER}
    # Straight to the activator: the calling pod's own address
    assert identities(f"10.0.7.7, {ACTIVATOR}", False) == {"10.0.7.7"}
    # Writing what the Gateway would have appended changes nothing without the token
    assert identities(f"203.0.113.7, {KOURIER}, {ACTIVATOR}", False) == {KOURIER}


def test_only_the_one_token_the_gateway_injects_says_a_request_crossed_it() -> None:
    token = EDGE.encode()
    assert carries_edge_token(EDGE, [token])
    assert not carries_edge_token(EDGE, [])
    assert not carries_edge_token(EDGE, [b"e" * 39 + b"f"])
    assert not carries_edge_token(EDGE, [token, token])  # a client's copy beside the Gateway's
    assert not carries_edge_token(None, [token])


def test_the_function_never_sees_the_edge_token() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/orders/o-1",
        "raw_path": b"/orders/o-1",
        "query_string": b"",
        "http_version": "1.1",
        "client": (PEER, 40000),
        "headers": [
            (b"x-funcmart-edge", EDGE.encode()),
            (b"x-forwarded-for", f"6.6.6.6, 203.0.113.7, {KOURIER}, {ACTIVATOR}".encode()),
        ],
    }
    app = SimpleNamespace(settings=DEPLOYED, _addresses={})
    request = KnativeApp._request(app, scope, b"")  # type: ignore[arg-type]
    assert request.source_ip == "203.0.113.7"
    assert [n for n, _ in request.headers] == ["x-forwarded-for"]


def test_with_a_hop_count_the_caller_is_that_many_entries_from_the_right() -> None:
    two = settings(TRUSTED_PROXY_HOPS="2")
    assert client_address("127.0.0.1", "6.6.6.6, 203.0.113.7, 10.0.0.5", two) == "203.0.113.7"
    assert client_address("127.0.0.1", "10.0.0.5", two) == "10.0.0.5"  # fewer entries
    with pytest.raises(SettingsError):
        settings(TRUSTED_PROXY_HOPS="-1")


def test_without_trusted_proxies_the_forwarded_header_is_ignored() -> None:
    plain = settings()
    assert client_address("192.0.2.1", "6.6.6.6", plain) == "192.0.2.1"


TRUSTED = settings(TRUSTED_PROXY_CIDRS="10.0.0.0/8,127.0.0.0/8")


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        (None, "127.0.0.1"),  # no proxy said anything: the peer
        ("203.0.113.7, 10.0.0.5", "203.0.113.7"),
        # The client wrote the left-most entries; the proxies appended the rest.
        ("6.6.6.6, 203.0.113.7, 10.0.0.5, 10.0.0.9", "203.0.113.7"),
        ("not-an-ip, 203.0.113.7, 10.0.0.5", "203.0.113.7"),
        ("10.0.0.5, 10.0.0.6", "10.0.0.5"),  # everyone trusted: the left-most
        ("::ffff:203.0.113.7, 10.0.0.5", "203.0.113.7"),  # one client, one identity
    ],
)
def test_with_trusted_networks_the_caller_is_the_right_most_untrusted_entry(
    forwarded: str | None, expected: str
) -> None:
    assert client_address("127.0.0.1", forwarded, TRUSTED) == expected


def test_the_settings_refuse_what_would_trust_the_wrong_hops() -> None:
    with pytest.raises(SettingsError, match="not both"):
        settings(TRUSTED_PROXY_CIDRS="10.0.0.0/8", TRUSTED_PROXY_HOPS="2")
    with pytest.raises(SettingsError, match="FUNCMART_EDGE_TOKEN"):
        settings(TRUSTED_PROXY_HOPS="2", TRUSTED_EDGE_HOPS="1")
    with pytest.raises(SettingsError, match="TRUSTED_EDGE_HOPS"):
        settings(TRUSTED_PROXY_HOPS="2", FUNCMART_EDGE_TOKEN=EDGE)
    with pytest.raises(SettingsError, match="32 bytes"):
        settings(TRUSTED_PROXY_HOPS="2", TRUSTED_EDGE_HOPS="1", FUNCMART_EDGE_TOKEN="short")
    with pytest.raises(SettingsError):
        settings(TRUSTED_EDGE_HOPS="-1", FUNCMART_EDGE_TOKEN=EDGE)
    # A consumer reads no client address: the shared ConfigMap's numbers need no token there
    consumer = KnativeSettings.load(
        {
            "FUNCMART_HANDLER": "process_order.handler",
            "FUNCMART_TRIGGER": "queue",
            "FUNCMART_EVENT_KEY": "v" * 32,
            "TRUSTED_PROXY_HOPS": "2",
            "TRUSTED_EDGE_HOPS": "1",
        }
    )
    assert consumer.edge_token is None
    assert EDGE not in repr(DEPLOYED)


def test_the_host_is_one_process_per_pod_with_threads_for_blocking_work() -> None:
    assert settings(METRICS_PORT="9464", WORKERS="1").metrics_port == 9464
    assert settings(THREADS="3").threads == 3
    with pytest.raises(SettingsError, match="one process per pod"):
        settings(WORKERS="2")
    with pytest.raises(SettingsError, match="THREADS"):
        settings(THREADS="0")


def test_an_entry_that_is_not_an_address_is_refused_where_it_would_be_read() -> None:
    # GIVEN entries a client can write: garbage, a kilobyte, a port, a zone index, "unknown"
    written = ("not-an-ip", "x" * 1000, "198.51.100.7:443", "fe80::1%eth0", "unknown")
    for entry in written:
        # WHEN it sits where the caller's address is read: refused (the host answers 400)
        with pytest.raises(ForwardedForRefused):
            client_address(PEER, f"{entry}, {ACTIVATOR}", DEPLOYED, False)
        with pytest.raises(ForwardedForRefused):
            client_address(PEER, f"{entry}, 10.0.1.5", TRUSTED)
        # AND left of it, it is never read
        chain = f"{entry}, 203.0.113.9, {KOURIER}, {ACTIVATOR}"
        assert client_address(PEER, chain, DEPLOYED, True) == "203.0.113.9"
        assert client_address(PEER, f"{entry}, 203.0.113.9, 10.0.1.5", TRUSTED) == "203.0.113.9"
