"""The table probe against DynamoDB Local, and against an endpoint where nothing listens."""

from __future__ import annotations

import time

from funcmart.adapters.dynamodb.health import TableProbe
from funcmart_hosts.local.services import free_port


def test_a_reachable_table_answers(dynamodb_endpoint, table_name):
    assert TableProbe(table_name, "us-east-1", dynamodb_endpoint, 1.0)()


def test_a_missing_table_is_unreachable(dynamodb_endpoint):
    assert not TableProbe("funcmart-no-such-table", "us-east-1", dynamodb_endpoint, 1.0)()


def test_nothing_listening_is_unreachable_quickly():
    started = time.monotonic()
    assert not TableProbe("t", "us-east-1", f"http://127.0.0.1:{free_port()}", 0.5)()
    assert time.monotonic() - started < 3
