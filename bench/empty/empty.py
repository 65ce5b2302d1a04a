"""The ceiling of the HTTP benchmark: a function that does nothing, behind the same gateway."""

from typing import Any

RESPONSE = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return RESPONSE
