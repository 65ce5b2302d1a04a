"""A function for host tests: answers 200 with what it was sent, and echoes the request's
X-Echo header into its own response (so a host's header writing meets request text)."""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    headers = event.get("headers") or {}
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Echo": headers.get("x-echo", "")},
        "body": json.dumps({"method": event["requestContext"]["http"]["method"]}),
    }
