"""Health: is each dependency reachable, and which version answers."""

from __future__ import annotations

from dataclasses import dataclass

from funcmart.ports import HealthProbe

OK = "ok"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class HealthReport:
    status: str
    version: str
    checks: dict[str, str]

    @property
    def http_status(self) -> int:
        return 503 if self.status == UNAVAILABLE else 200

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "version": self.version, "checks": self.checks}


def check_health(table: HealthProbe, redis: HealthProbe, version: str) -> HealthReport:
    """The table is essential (503 without it); Redis is not: without it the catalog is
    served from DynamoDB and only carts answer 503, so the service is degraded, not down."""
    checks = {
        "dynamodb": OK if table() else UNAVAILABLE,
        "redis": OK if redis() else DEGRADED,
    }
    if checks["dynamodb"] != OK:
        status = UNAVAILABLE
    elif checks["redis"] != OK:
        status = DEGRADED
    else:
        status = OK
    return HealthReport(status, version, checks)
