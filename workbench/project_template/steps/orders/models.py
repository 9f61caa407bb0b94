"""Request and response shapes of the orders API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OrderStatus = Literal["placed", "confirmed"]


class PlaceOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str = Field(min_length=1, max_length=100, examples=["coffee"])
    quantity: int = Field(ge=1, le=1000, examples=[2])


class Order(BaseModel):
    id: str
    item: str
    quantity: int
    status: OrderStatus


class Error(BaseModel):
    error: str
