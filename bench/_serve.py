"""One local platform process for a benchmark: `python -m bench._serve '<json spec>'`.

Spec: mode ("http": the gateway with every route plus GET /empty, no consumers; "consume":
the queue pollers of `functions`, no gateway, no schedules), the endpoints, redis_url, table,
stack, parameters, ready_file (where the gateway's URL is written once it listens), and
optionally batch_size (every SQS event source of the template takes batches of that size)
and pollers (per queue; the local platform's default otherwise).
Logging is configured as `make dev` configures it; the caller sends stdout and stderr to
files. Stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from bench.common import ROOT

EMPTY_FUNCTION = "EmptyBench"


def template_with_empty_function() -> Any:
    from funcmart_hosts.gateway.template import TEMPLATE_PATH, load_yaml, parse

    raw = load_yaml(TEMPLATE_PATH)
    raw["Resources"][EMPTY_FUNCTION] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "Handler": "empty.handler",
            "CodeUri": str(ROOT / "bench" / "empty"),
            "Events": {
                "Api": {
                    "Type": "HttpApi",
                    "Properties": {
                        "Path": "/empty",
                        "Method": "GET",
                        "Auth": {"Authorizer": "NONE"},
                    },
                }
            },
        },
    }
    return parse(raw)


def template_with_batch_size(size: int) -> Any:
    from funcmart_hosts.gateway.template import TEMPLATE_PATH, load_yaml, parse

    raw = load_yaml(TEMPLATE_PATH)
    for resource in raw["Resources"].values():
        for event in (resource.get("Properties") or {}).get("Events", {}).values():
            if event.get("Type") == "SQS":
                event["Properties"]["BatchSize"] = size
    return parse(raw)


def main() -> None:
    from funcmart_hosts.local.cli import _logging
    from funcmart_hosts.local.config import LocalSettings
    from funcmart_hosts.local.platform import LocalPlatform, ensure_credentials

    spec = json.loads(sys.argv[1])
    _logging(False)
    ensure_credentials()
    settings = LocalSettings(
        port=0,
        stack_name=spec["stack"],
        dynamodb_endpoint=spec["dynamodb_endpoint"],
        sqs_endpoint=spec["sqs_endpoint"],
        redis_url=spec["redis_url"],
        names={"Table": spec["table"]},
        parameters=spec.get("parameters", {}),
        **({"pollers": int(spec["pollers"])} if spec.get("pollers") else {}),
    )
    http = spec["mode"] == "http"
    template = template_with_empty_function() if http else None
    if spec.get("batch_size"):
        template = template_with_batch_size(int(spec["batch_size"]))
    platform = LocalPlatform(
        settings,
        template=template,
        serve_http=http,
        poll_queues=not http,
        run_schedules=False,
        functions=spec.get("functions"),
        embedded=False,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    platform.start()
    try:
        ready = {"url": platform.url if http else None, "pid": __import__("os").getpid()}
        Path(spec["ready_file"]).write_text(json.dumps(ready))
        while not stop.wait(0.5):
            pass
    finally:
        platform.stop()


if __name__ == "__main__":
    main()
