"""`make redrive`: every dead letter back to its source queue, through the operations API.

POSTs /operations/dead-letters/redrive as an admin: to `make dev`'s local API by default
(with a dev admin token minted here), or to a deployed API with --api.

The admin token never goes on a command line (where `ps` and shell history show it): it is
read from the environment (FUNCMART_ADMIN_TOKEN) or from a file (--token-file, its first
line). It goes only where --api names: https, or plain http to a loopback address only; a
redirect is never followed (it would carry the token to wherever it points), and the dev
token is minted only for a loopback API.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TOKEN_ENV = "FUNCMART_ADMIN_TOKEN"


class Refused(Exception):
    """What the tool will not do, said to the operator."""


def dev_admin_token() -> str:
    from funcmart_hosts.local.cli import main as local

    out = io.StringIO()
    saved, sys.stdout = sys.stdout, out
    try:
        code = local(["token", "--role", "admin", "--sub", "dev-operator"])
    finally:
        sys.stdout = saved
    if code != 0:
        raise SystemExit("could not mint a dev admin token")
    return out.getvalue().strip()


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_api(api: str) -> str:
    """The API's base URL: https, or http to a loopback address; Refused otherwise."""
    parts = urlsplit(api)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"--api must be an http(s) URL, got {api!r}")
    if parts.username or parts.password:
        raise Refused("--api must not carry credentials")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise Refused(
            f"--api {api} is plain http to a host that is not this machine: the admin token "
            "would travel in clear text; use https"
        )
    return api.rstrip("/")


def admin_token(api: str, token_file: str | None, env: Mapping[str, str]) -> str:
    """The token from --token-file, else the environment, else (a loopback API only) a dev
    token minted here."""
    if token_file:
        lines = Path(token_file).read_text(encoding="utf-8").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise Refused(f"{token_file} holds no token")
        return token
    if env.get(TOKEN_ENV, "").strip():
        return env[TOKEN_ENV].strip()
    if is_loopback(urlsplit(api).hostname):
        return dev_admin_token()
    raise Refused(f"set {TOKEN_ENV} or pass --token-file with an admin's bearer token")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Answers a redirect as the error it is here: following it would send the token on."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make redrive", description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:3000")
    parser.add_argument("--token-file", help=f"a file holding an admin's token (or {TOKEN_ENV})")
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.token is not None:
            raise Refused(
                f"a token on the command line is visible to every user of this machine: set "
                f"{TOKEN_ENV} or pass --token-file"
            )
        api = checked_api(args.api)
        token = admin_token(api, args.token_file, os.environ if env is None else env)
    except (Refused, OSError) as exc:
        print(f"redrive: {exc}", file=sys.stderr)
        return 2
    request = urllib.request.Request(
        f"{api}/operations/dead-letters/redrive",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=30) as answer:
            report = json.load(answer)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            where = exc.headers.get("Location", "?")
            print(
                f"redrive: the API answered {exc.code}, a redirect to {where}; not followed "
                "(it would carry the token there). Pass the right --api.",
                file=sys.stderr,
            )
            return 1
        print(f"redrive refused: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"no API at {api} ({exc.reason}); is `make dev` running?", file=sys.stderr)
        return 1
    for q in report["queues"]:
        done = f"task {q['task']}" if q.get("task") else f"{q.get('moved', 0)} messages moved"
        print(f"{q['deadLetterQueue']} -> {q['sourceQueue']}: {done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
