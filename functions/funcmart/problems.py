"""RFC 9457 problem details: the one body shape of every error answer, whoever sends it.

Free of Powertools and of any transport, so the in-function HTTP entry point and the hosts'
gateway emulation build the same bodies.
"""

from __future__ import annotations

import json
from typing import Any

PROBLEM_JSON = "application/problem+json"


def _slug(title: str) -> str:
    return "-".join(title.lower().replace(",", "").split())


def problem_body(
    status: int, title: str, detail: str, request_id: str | None = None, **extra: Any
) -> str:
    """The JSON text of a problem: type, title, status, detail, requestId and extensions."""
    body: dict[str, Any] = {
        "type": f"urn:funcmart:problem:{_slug(title)}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["requestId"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps(body, separators=(",", ":"))
