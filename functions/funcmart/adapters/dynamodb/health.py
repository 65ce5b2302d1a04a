"""A DynamoDB reachability probe for /health: one GetItem with short timeouts, no retries."""

from __future__ import annotations

import logging
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)
_PROBE_KEY = {"pk": {"S": "HEALTH#probe"}, "sk": {"S": "HEALTH"}}


class TableProbe:
    """True when the table answers a GetItem (found or not) within the timeout."""

    def __init__(
        self,
        table_name: str,
        region: str,
        endpoint: str | None,
        timeout: float,
        client: Any = None,
        session: botocore.session.Session | None = None,
    ) -> None:
        """`session`: the process's botocore session (a new one if not given); boto3 is not
        needed for one client."""
        self._table = table_name
        self.client: Any = client or (session or botocore.session.get_session()).create_client(
            "dynamodb",
            region_name=region,
            endpoint_url=endpoint,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        )

    def __call__(self) -> bool:
        try:
            self.client.get_item(TableName=self._table, Key=_PROBE_KEY, ProjectionExpression="pk")
        except (BotoCoreError, ClientError) as exc:
            log.warning("health: table %s unreachable: %s", self._table, exc)
            return False
        return True
