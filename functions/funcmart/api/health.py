"""Health response schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class HealthChecks(BaseModel):
    dynamodb: Literal["ok", "unavailable"]
    redis: Literal["ok", "degraded"]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="unavailable (503) without the table; degraded when only Redis is out"
    )
    version: str
    checks: HealthChecks
