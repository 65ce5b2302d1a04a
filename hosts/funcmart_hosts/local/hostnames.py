"""The Host names the local gateway serves, against DNS rebinding.

A web page on another site can make a browser send requests to `make dev` (its name made
to resolve to 127.0.0.1), with a published dev secret to sign tokens; the browser then sends
that site's name as Host. So the gateway answers only Host names it serves: by default the
loopback ones (`localhost`, `*.localhost`, any 127.0.0.0/8 address, `[::1]`), with any port,
plus the names given in FUNCMART_ALLOWED_HOSTS (comma-separated) or `--allowed-host`, and the
address it binds to when that is a specific one. Anything else is answered 421 Misdirected
Request; no Host header on an HTTP/1.1 request, several Host headers or a malformed one, 400
(RFC 9112, 3.2); all as problem+json, before any route or function runs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from funcmart_hosts.gateway.events import HttpRequest, request_id
from funcmart_hosts.gateway.responses import HttpResponse, problem_response

_PORT = re.compile(r"[0-9]{1,5}")
# A registered name as Host carries it: letters, digits, hyphens and dots.
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?")


def host_of(value: str) -> str | None:
    """The host part of a Host header value, lower case and without a trailing dot; None
    when the value is not a host with an optional port."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[: end + 1], value[end + 1 :]
        if end < 0:
            return None
    else:
        host, sep, port = value.partition(":")
        rest = f":{port}" if sep else ""
    if rest and not (rest.startswith(":") and _PORT.fullmatch(rest[1:])):
        return None
    host = host.rstrip(".") if not host.startswith("[") else host
    return host or None


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HostNames:
    """Which Host names are served: loopback ones and the names given."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        names = set()
        for name in (n.strip().lower() for n in extra):
            host = f"[{name}]" if _is_ipv6(name) else host_of(name) if name else None
            if host is not None and host not in ("0.0.0.0", "[::]"):  # binds, not names
                names.add(host)
        self.extra = frozenset(names)

    def serves(self, host: str) -> bool:
        return _loopback(host) or host in self.extra

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        """The answer to a request for a Host not served; None when it is served."""
        values = [v for k, v in request.headers if k.lower() == "host"]
        if len(values) > 1:
            return _bad("several Host headers")
        if not values:
            if request.protocol == "HTTP/1.0":
                return None  # HTTP/1.0 has no Host: no browser asks that way
            return _bad("an HTTP/1.1 request needs a Host header")
        host = host_of(values[0])
        if host is None or not (host.startswith("[") or _NAME.fullmatch(host)):
            return _bad("the Host header is not a host name with an optional port")
        if self.serves(host):
            return None
        served = ", ".join(["localhost", "127.0.0.1", "[::1]", *sorted(self.extra)])
        return problem_response(
            421,
            "Misdirected Request",
            f"this gateway does not serve the host {host[:100]!r}; it serves {served} (any "
            "port). Add a name with FUNCMART_ALLOWED_HOSTS or --allowed-host",
            request_id(),
        )


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _bad(detail: str) -> HttpResponse:
    return problem_response(400, "Bad Request", detail, request_id())
