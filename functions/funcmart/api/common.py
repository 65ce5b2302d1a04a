"""What the schemas of every resource share. Apart from the catalog's, so that a function
importing its own resource's schemas does not build the catalog's (pydantic builds each
model's validator when its class is defined)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MoneyOut(BaseModel):
    amount: int
    currency: str
