"""Operations request and response schemas (admin only)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from funcmart.api.common import Strict
from funcmart.api.orders import OrderOut
from funcmart.domain.orders import MAX_REASON_LENGTH, Order
from funcmart.ports import Redrive


class OperatorReason(Strict):
    """Why the operator acts: recorded on the order with who and when."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "payment provider outage over; retrying"}]}
    )

    reason: Annotated[StrictStr, Field(min_length=1, max_length=MAX_REASON_LENGTH)]


class OperatorActionOut(BaseModel):
    action: str
    actor: str
    at: str
    reason: str
    to: str


class OperationsOrderOut(OrderOut):
    """An order as operators see it: the step that failed and what was done about it."""

    flaggedFrom: str | None = None
    operatorActions: list[OperatorActionOut] = Field(default_factory=list)

    @classmethod
    def of(cls, o: Order) -> OperationsOrderOut:
        return cls.model_validate(o.to_operations_dict())


class OperationsOrderPage(BaseModel):
    items: list[OperationsOrderOut]
    nextCursor: str | None = None


class RedriveOut(BaseModel):
    deadLetterQueue: str
    sourceQueue: str
    task: str | None = Field(None, description="the SQS message move task's handle")
    moved: int | None = Field(None, description="messages moved, where moved one by one")

    @classmethod
    def of(cls, r: Redrive) -> RedriveOut:
        return cls(
            deadLetterQueue=r.dead_letter_queue,
            sourceQueue=r.source_queue,
            task=r.task,
            moved=r.moved,
        )


class RedriveReport(BaseModel):
    queues: list[RedriveOut]
