"""Settings of the local platform in one typed place: argument, then environment, then default.

The JWT issuer and audience are not settings here: they come from the template's authorizer
(its parameters' defaults, or `--parameter` overrides), so the local gateway accepts exactly
the tokens the deployed HTTP API would.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from funcmart.settings import SettingsError, coerce, redacted_repr
from funcmart_hosts.gateway.template import TEMPLATE_PATH

# Only ever accepted by the local gateway; 32+ bytes so HS256 keys meet RFC 7518's minimum.
DEFAULT_DEV_JWT_SECRET = "funcmart-local-dev-secret-do-not-use-in-any-deployment"
# API Gateway HTTP APIs reject request payloads over 10 MB.
API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Pollers per queue at most: each is a thread and a long poll, on one machine.
MAX_POLLERS = 64


@dataclass(frozen=True)
class LocalSettings:
    template_path: Path = TEMPLATE_PATH
    host: str = "127.0.0.1"
    port: int = 3000
    jwt_secret: str = DEFAULT_DEV_JWT_SECRET
    # When set, tokens are verified against this JWKS (RS256 etc.) instead of the dev secret.
    jwks_url: str | None = None
    # The operator console's OIDC client id at the identity provider (with jwks_url only);
    # the authorizer's first audience when unset.
    console_client_id: str | None = None
    region: str = "us-east-1"
    account_id: str = "123456789012"
    # Prefix of the local physical names: "<stack>-<LogicalId>", as CloudFormation would.
    stack_name: str = "funcmart"
    dynamodb_endpoint: str | None = None
    sqs_endpoint: str | None = None
    redis_url: str = DEFAULT_REDIS_URL
    # Template parameter values that replace the defaults (sam's --parameter-overrides).
    parameters: dict[str, str] = field(default_factory=dict)
    # Physical names by logical id that replace "<stack>-<LogicalId>" (e.g. a test's table).
    names: dict[str, str] = field(default_factory=dict)
    # Long-poll wait of the queue pollers; short so that a stop takes effect quickly.
    poll_wait_seconds: int = 1
    # Pollers per queue: batches of one queue handed to its function at once, as Lambda's
    # event source mapping runs several (at most the mapping's ScalingConfig.MaximumConcurrency).
    pollers: int = 2
    # Fire every schedule at this interval instead of its rate(...) (demos and tests).
    schedule_every: float | None = None
    max_body_bytes: int = API_GATEWAY_BODY_LIMIT
    # Host names the gateway serves besides the loopback ones, comma-separated (against DNS
    # rebinding: see funcmart_hosts.local.hostnames).
    allowed_hosts: str = ""

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"jwt_secret"}))

    # "memory": the functions trace with OpenTelemetry into this process, which keeps the
    # recent traces and shows them at /traces (`make dev` turns it on); "off": no tracing.
    traces: str = "off"

    _ENV: ClassVar[dict[str, tuple[str, ...]]] = {
        "template_path": ("FUNCMART_TEMPLATE",),
        "host": ("FUNCMART_LOCAL_HOST",),
        "port": ("FUNCMART_LOCAL_PORT",),
        "jwt_secret": ("FUNCMART_DEV_JWT_SECRET",),
        "jwks_url": ("FUNCMART_JWKS_URL",),
        "console_client_id": ("FUNCMART_CONSOLE_CLIENT_ID",),
        "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
        "stack_name": ("FUNCMART_STACK_NAME",),
        "dynamodb_endpoint": ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"),
        "sqs_endpoint": ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"),
        "redis_url": ("REDIS_URL",),
        "poll_wait_seconds": ("FUNCMART_POLL_WAIT_SECONDS",),
        "pollers": ("FUNCMART_POLLERS",),
        "schedule_every": ("FUNCMART_SCHEDULE_EVERY",),
        "allowed_hosts": ("FUNCMART_ALLOWED_HOSTS",),
        "traces": ("FUNCMART_LOCAL_TRACES",),
    }

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> LocalSettings:
        """Build settings from overrides (None means unset), then `environ`, then defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            given = overrides.get(f.name)
            if given is not None:
                values[f.name] = given
                continue
            raw = next((env[v] for v in cls._ENV.get(f.name, ()) if env.get(v)), None)
            if raw is not None:
                values[f.name] = coerce(f.name, str(f.type), raw)
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown local settings: {sorted(unknown)}")
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0-65535 (0 picks a free one), got {self.port}")
        if not self.jwks_url and len(self.jwt_secret.encode()) < 32:
            raise SettingsError("FUNCMART_DEV_JWT_SECRET must be at least 32 bytes for HS256")
        if (
            not self.jwks_url
            and self.jwt_secret == DEFAULT_DEV_JWT_SECRET
            and not _loopback(self.host)
        ):
            raise SettingsError(
                f"the dev JWT secret is public: bind to 127.0.0.1 or set FUNCMART_DEV_JWT_SECRET "
                f"(or FUNCMART_JWKS_URL) before listening on {self.host}"
            )
        if self.poll_wait_seconds < 0 or self.poll_wait_seconds > 20:
            raise SettingsError("poll wait must be 0-20 seconds (SQS's long-poll range)")
        if not 1 <= self.pollers <= MAX_POLLERS:
            raise SettingsError(f"pollers per queue must be 1-{MAX_POLLERS}, got {self.pollers}")
        if self.schedule_every is not None and self.schedule_every <= 0:
            raise SettingsError("schedule interval must be positive")
        if self.traces not in ("memory", "off"):
            raise SettingsError(f"FUNCMART_LOCAL_TRACES must be memory or off, got {self.traces!r}")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str]:
    """`["A=1", "B=2"]` from the command line as a dict; fails fast on a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SettingsError(f"{what} must look like NAME=VALUE, got {pair!r}")
        out[key] = value
    return out
