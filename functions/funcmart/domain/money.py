"""Money: integer minor units and an ISO 4217 currency code. Never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass

from funcmart.domain.errors import InvalidRequest

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Money:
    amount: int  # minor units (cents)
    currency: str

    def __post_init__(self) -> None:
        if not _CURRENCY.match(self.currency):
            raise InvalidRequest(f"currency must be an ISO 4217 code, got {self.currency!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidRequest("amount must be an integer number of minor units")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def times(self, n: int) -> Money:
        return Money(self.amount * n, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidRequest(f"cannot mix {self.currency} and {other.currency}")

    def to_dict(self) -> dict[str, int | str]:
        return {"amount": self.amount, "currency": self.currency}
