"""Order request and response schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from funcmart.api.common import MoneyOut, Strict
from funcmart.api.numbers import WHOLE
from funcmart.domain.orders import MAX_LINES, MAX_QUANTITY, Order, RequestedLine

# An Idempotency-Key: visible ASCII, spaces only between visible characters (an HTTP field
# value carries no control characters, and its ends are trimmed on the way).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]*[!-~])?$"

ProductId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class OrderLineIn(Strict):
    productId: ProductId
    quantity: Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY), WHOLE]


PaymentToken = Annotated[
    StrictStr,
    Field(
        pattern=r"^(pm|tok)_[A-Za-z0-9_]{1,60}$",
        description=(
            "a Stripe PaymentMethod id (pm_...) or card token (tok_..., from Stripe.js or "
            "Elements), or one of the payment simulator's tokens where it runs"
        ),
        examples=["tok_ok"],
    ),
]


class NewOrder(Strict):
    """An order of the lines given."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lines": [{"productId": "3f8e2b7c9a1d4e5fb6c7d8e9f0a1b2c3", "quantity": 1}],
                    "paymentToken": "tok_ok",
                }
            ]
        }
    )

    lines: Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)]
    paymentToken: PaymentToken

    def requested(self) -> list[RequestedLine]:
        return [RequestedLine(line.productId, line.quantity) for line in self.lines]


class NewOrderFromCart(Strict):
    """An order of everything in the caller's cart; the ordered lines leave the cart."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"fromCart": True, "paymentToken": "tok_ok"}]}
    )

    fromCart: Literal[True]
    paymentToken: PaymentToken


class OrderLineOut(BaseModel):
    productId: str
    name: str
    unitPrice: MoneyOut
    quantity: int
    subtotal: MoneyOut


class OrderOut(BaseModel):
    id: str
    customer: str
    status: str
    lines: list[OrderLineOut]
    total: MoneyOut
    createdAt: str
    updatedAt: str
    failureReason: str | None = None

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls.model_validate(o.to_dict())


class OrderPage(BaseModel):
    items: list[OrderOut]
    nextCursor: str | None = None
