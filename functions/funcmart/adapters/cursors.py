"""Opaque page cursors: a flat map of strings, base64url-encoded JSON.

Every adapter that pages (DynamoDB and the in-memory fakes) issues cursors through here, and
every cursor a client sends back is checked here: anything we did not issue is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json

from funcmart.domain.errors import InvalidRequest

MAX_VALUE = 1024


def encode(plain: dict[str, str]) -> str:
    raw = json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, expected_keys: set[str]) -> dict[str, str]:
    """The map a cursor stands for; InvalidRequest unless it has exactly `expected_keys`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidRequest("cursor is not one this API issued", field="cursor") from exc
    if (
        not isinstance(plain, dict)
        or set(plain) != expected_keys
        or not all(isinstance(v, str) and 0 < len(v) <= MAX_VALUE for v in plain.values())
    ):
        raise InvalidRequest("cursor is not one this API issued", field="cursor")
    return plain
