"""Cart request and response schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from funcmart.api.common import MoneyOut, Strict
from funcmart.api.numbers import WHOLE
from funcmart.domain.cart import MAX_QUANTITY


class CartItemIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"quantity": 2}]})

    quantity: Annotated[
        StrictInt,
        Field(ge=0, le=MAX_QUANTITY, description="the quantity to hold; 0 removes the line"),
        WHOLE,
    ]


class CartLineOut(BaseModel):
    productId: str
    quantity: int
    available: bool = Field(description="false once the product was archived or removed")
    name: str | None
    unitPrice: MoneyOut | None
    subtotal: MoneyOut | None


class CartOut(BaseModel):
    lines: list[CartLineOut]
    itemCount: int = Field(description="the sum of the quantities of the available lines")
    total: MoneyOut | None = Field(
        description="the sum of the available lines; null when empty or currencies differ"
    )
