"""The SQS batch a Lambda event source mapping delivers, built exactly as AWS builds it.

The HTTP API's payload 2.0 events, the Lambda context and scheduled events are shared with
the Knative adapter and live in `funcmart_hosts.gateway`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

# ---------------------------------------------------------------------------- SQS batch


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of the Lambda SQS event from one ReceiveMessage result entry."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS's {StringValue, BinaryValue, DataType} in Lambda's camel-case shape."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues") or [])
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues") or []]
    out["dataType"] = value.get("DataType", "String")
    return out


def sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn, region) for m in messages]}


def failed_message_ids(result: Any, batch_ids: set[str]) -> set[str] | None:
    """The messages a ReportBatchItemFailures response names as failed.

    None means the response is invalid, which Lambda treats as the whole batch failing."""
    if result is None:
        return set()
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in batch_ids:
            return None
        failed.add(str(ident))
    return failed
