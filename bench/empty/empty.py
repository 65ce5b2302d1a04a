"""The ceiling of the HTTP benchmark: a function that does nothing, behind the same gateway."""

from typing import Any

RESPONSE = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def handler(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
    return RESPONSE
