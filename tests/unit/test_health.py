"""Health: the table decides up or down; Redis only degrades."""

from __future__ import annotations

import pytest

from funcmart.services.health import check_health


@pytest.mark.parametrize(
    ("table", "redis", "status", "http"),
    [
        (True, True, "ok", 200),
        (True, False, "degraded", 200),
        (False, True, "unavailable", 503),
        (False, False, "unavailable", 503),
    ],
)
def test_health_report(table, redis, status, http):
    report = check_health(lambda: table, lambda: redis, "1.2.3")
    assert (report.status, report.http_status) == (status, http)
    assert report.to_dict()["checks"] == {
        "dynamodb": "ok" if table else "unavailable",
        "redis": "ok" if redis else "degraded",
    }
    assert report.version == "1.2.3"
