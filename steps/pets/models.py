"""Request and response shapes of the pet API (camelCase, as in the tutorial)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _whole_number(value: Any) -> Any:
    """JSON's true/false and "24" are not numbers of months (pydantic's lax mode, which Litestar
    validates bodies in, would read them as 1/0 and 24)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


Months = Annotated[int, BeforeValidator(_whole_number)]

Species = Literal["dog", "cat", "bird", "other"]
Status = Literal[
    "new", "in_quarantine", "healthy", "available", "pending", "adopted", "ill", "under_treatment",
    "recovered", "deleted",
]  # fmt: skip


class CreatePetBody(BaseModel):
    # a name of spaces is no name: stripped before its length is checked
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=100, examples=["Jack"])
    species: Species = Field(examples=["dog"])
    ageMonths: Months = Field(ge=0, le=600, examples=[24])


class UpdatePetBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    species: Species | None = None
    ageMonths: Months | None = Field(default=None, ge=0, le=600)
    status: Status | None = None


class Pet(BaseModel):
    id: str
    name: str
    species: Species
    ageMonths: int
    status: Status
    createdAt: int
    updatedAt: int
    notes: str | None = None
    nextFeedingAt: int | None = None
    deletedAt: int | None = None
    purgeAt: int | None = None


class PetList(BaseModel):
    pets: list[Pet]


class StatusRequested(BaseModel):
    message: str
    petId: str
    currentStatus: Status
    requestedStatus: Status


class Deleted(BaseModel):
    message: str
    petId: str
    purgeAt: int


class Error(BaseModel):
    error: str
