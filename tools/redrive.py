"""`make redrive`: every dead letter back to its source queue, through the operations API.

POSTs /operations/dead-letters/redrive as an admin: to `make dev`'s local API by default
(with a dev admin token), or to a deployed API with --api and --token.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make redrive", description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:3000")
    parser.add_argument("--token", help="an admin's bearer token (default: a local dev one)")
    args = parser.parse_args(argv)
    token = args.token or dev_admin_token()
    request = urllib.request.Request(
        f"{args.api.rstrip('/')}/operations/dead-letters/redrive",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            report = json.load(answer)
    except urllib.error.HTTPError as exc:
        print(f"redrive refused: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"no API at {args.api} ({exc.reason}); is `make dev` running?", file=sys.stderr)
        return 1
    for q in report["queues"]:
        done = f"task {q['task']}" if q.get("task") else f"{q.get('moved', 0)} messages moved"
        print(f"{q['deadLetterQueue']} -> {q['sourceQueue']}: {done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
