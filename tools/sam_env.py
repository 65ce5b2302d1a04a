"""Writes env-vars.json for `sam local invoke --env-vars` and `sam local start-api --env-vars`.

    python -m tools.sam_env [--aws-endpoint URL] [--redis-url URL] [--account-id ID] [--out FILE]
    make sam-env [SAM_AWS_ENDPOINT=...] [SAM_REDIS_URL=...]

SAM runs each function in a container, where 127.0.0.1 is the container itself, and resolves
`!Ref Table` to the logical id "Table" and queue references to nothing. This file gives each
function the values `make dev` would, pointed at services on the host: the table and queues
the LocalStack hook (or `make dev`) creates, DynamoDB and SQS at `--aws-endpoint`, Redis at
`--redis-url`. Defaults: LocalStack and the compose file's Redis, reached through
`host.docker.internal` (docs/local-platform.md: on Linux, pass `--add-host` or use
`--docker-network`).

SAM overrides only the variables a function declares in the template, so each entry holds
exactly those: a test checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from funcmart_hosts.gateway.template import ROOT, Template, load
from funcmart_hosts.local.config import LocalSettings
from funcmart_hosts.local.resources import Deployment, QueueRef

DEFAULT_ENDPOINT = "http://host.docker.internal:4566"
DEFAULT_REDIS = "redis://host.docker.internal:6380/0"
# LocalStack's account; moto's is 123456789012.
DEFAULT_ACCOUNT = "000000000000"
OUT = ROOT / "env-vars.json"


def env_vars(
    tpl: Template,
    *,
    aws_endpoint: str = DEFAULT_ENDPOINT,
    redis_url: str = DEFAULT_REDIS,
    account_id: str = DEFAULT_ACCOUNT,
    stack_name: str = "funcmart",
) -> dict[str, dict[str, str]]:
    """{LogicalId: {VARIABLE: value}} for every function, only the variables it declares."""
    settings = LocalSettings.load({}, account_id=account_id, stack_name=stack_name)
    deployment = Deployment(tpl, settings, redis_url, aws_endpoint, aws_endpoint)
    endpoint = aws_endpoint.rstrip("/")
    for lid in tpl.queues:
        name = deployment.name(lid)
        deployment.queues[lid] = QueueRef(
            lid, name, f"{endpoint}/{account_id}/{name}", deployment.arn("sqs", name)
        )
    out: dict[str, dict[str, str]] = {}
    for lid in sorted(tpl.functions):
        fn = tpl.functions[lid]
        env = deployment.function_env(fn)
        if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
            # A collector on the host, like the other services (TracingMode=otlp).
            host = urlparse(aws_endpoint).hostname or "host.docker.internal"
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://{host}:4318"
        out[lid] = {key: env[key] for key in sorted(fn.environment)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sam_env", description=__doc__)
    parser.add_argument("--aws-endpoint", default=DEFAULT_ENDPOINT, help="DynamoDB and SQS")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT, help="in the queue URLs")
    parser.add_argument("--stack-name", default="funcmart", help="prefix of the names")
    parser.add_argument("--template", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT, help="- for stdout")
    args = parser.parse_args(argv)
    doc: dict[str, Any] = env_vars(
        load(args.template) if args.template else load(),
        aws_endpoint=args.aws_endpoint,
        redis_url=args.redis_url,
        account_id=args.account_id,
        stack_name=args.stack_name,
    )
    text = json.dumps(doc, indent=2) + "\n"
    if str(args.out) == "-":
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(doc)} functions); use it with:", file=sys.stderr)
        print(
            "  sam local invoke ListProducts -e events/list_products.json --env-vars "
            f"{args.out.name}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
