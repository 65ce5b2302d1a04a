"""The table's connections under concurrency: as many threads as BATCH_CONCURRENCY allows per
batch, with several batches at once, reuse their connections instead of opening one per
request (a pool smaller than the callers discards a connection after nearly every call)."""

from __future__ import annotations

import logging
import threading

import pytest

from funcmart.adapters.dynamodb.table import bind
from tests.support.builders import random_id


def test_forty_threads_calling_the_table_at_once_keep_their_connections(
    dynamodb_endpoint: str, table_name: str, caplog: pytest.LogCaptureFixture
):
    # GIVEN one binding of the table, as one function instance has
    tables = bind(table_name, "us-east-1", dynamodb_endpoint)
    start = threading.Barrier(40, timeout=30)
    errors: list[BaseException] = []

    def reads() -> None:
        try:
            for _ in range(3):
                start.wait()  # the forty calls overlap
                tables.Order.count(f"ORDER#{random_id()}")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    # WHEN forty threads (four batches of ten records, say) query it at once, three times
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        threads = [threading.Thread(target=reads) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    # THEN every call succeeds and no connection is thrown away for want of room in the pool
    assert not errors
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
