"""Publisher over SQS: one queue per event type."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from funcmart.domain.errors import DependencyUnavailable
from funcmart.domain.orders import Event, event_to_dict


class SqsPublisher:
    def __init__(self, client: Any, queue_urls: dict[str, str]) -> None:
        self._sqs = client
        self._urls = queue_urls

    def publish(self, event: Event) -> None:
        url = self._urls.get(event.type)
        if not url:
            raise DependencyUnavailable(f"no queue is configured for {event.type}")
        try:
            self._sqs.send_message(
                QueueUrl=url,
                MessageBody=json.dumps(event_to_dict(event), separators=(",", ":")),
                MessageAttributes={
                    "eventType": {"DataType": "String", "StringValue": event.type},
                    "correlationId": {
                        "DataType": "String",
                        "StringValue": event.correlation_id or "-",
                    },
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise DependencyUnavailable(f"could not publish {event.type}: {exc}") from exc
