"""Catalog request and response schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from funcmart.api.common import MoneyOut, Strict
from funcmart.api.numbers import WHOLE
from funcmart.domain.catalog import (
    CATEGORY_PATTERN,
    MAX_STOCK,
    NAME_PATTERN,
    Product,
    ProductChanges,
    StockChange,
)
from funcmart.domain.commands import CreateProduct, SetStock, UpdateProduct
from funcmart.domain.money import Money

Category = Annotated[StrictStr, Field(pattern=CATEGORY_PATTERN, examples=["books"])]
ProductName = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]


class MoneyIn(Strict):
    amount: Annotated[StrictInt, Field(ge=0, le=10_000_000_000, description="minor units"), WHOLE]
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]

    def money(self) -> Money:
        return Money(self.amount, self.currency)


class NewProduct(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Dune",
                    "category": "books",
                    "price": {"amount": 1299, "currency": "EUR"},
                    "stock": 5,
                }
            ]
        }
    )

    name: ProductName
    description: Annotated[StrictStr, Field(max_length=4000)] = ""
    category: Category
    price: MoneyIn
    stock: Annotated[StrictInt, Field(ge=0, le=MAX_STOCK), WHOLE] = 0

    def command(self) -> CreateProduct:
        return CreateProduct(
            name=self.name,
            description=self.description,
            category=self.category,
            price=self.price.money(),
            stock=self.stock,
        )


class ProductPatch(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"version": 1, "price": {"amount": 1099, "currency": "EUR"}}]
        }
    )

    version: Annotated[StrictInt, Field(ge=1, description="the version you read"), WHOLE]
    name: ProductName | None = None
    description: Annotated[StrictStr, Field(max_length=4000)] | None = None
    category: Category | None = None
    price: MoneyIn | None = None

    def command(self, product_id: str) -> UpdateProduct:
        changes = ProductChanges(
            name=self.name,
            description=self.description,
            category=self.category,
            price=self.price.money() if self.price else None,
        )
        return UpdateProduct(product_id, self.version, changes)


class StockUpdate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"adjust": -2}]})

    set: Annotated[StrictInt, Field(ge=0, le=MAX_STOCK), WHOLE] | None = None
    adjust: Annotated[StrictInt, Field(ge=-MAX_STOCK, le=MAX_STOCK), WHOLE] | None = None

    def command(self, product_id: str) -> SetStock:
        return SetStock(product_id, StockChange(set_to=self.set, adjust_by=self.adjust))


class ProductOut(BaseModel):
    id: str
    name: str
    description: str
    category: str
    price: MoneyOut
    stock: int
    status: str
    version: int
    createdAt: str
    updatedAt: str

    @classmethod
    def of(cls, p: Product) -> ProductOut:
        return cls.model_validate(p.to_dict())


class ProductPage(BaseModel):
    items: list[ProductOut]
    nextCursor: str | None = None
