"""Request and response bodies: what a client may send, and what it gets back."""

import re
from datetime import datetime
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

EMAIL_MAX_LENGTH = 320  # RFC 3696 (64 local + @ + 255 domain); users_email_length_check holds the same
NAME_MAX_LENGTH = 200  # users_name_length_check holds the same

# Pragmatic, not RFC 5322: one @, something before it, a dotted domain after it, no spaces or controls.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+")


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; refusing it here keeps the 422 from becoming a 500.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


def _is_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address such as ada@example.com")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Email = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_is_email),
    Field(examples=["ada@example.com"], description="Unique, compared case-insensitively."),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
    Field(examples=["Ada Lovelace"]),
]

_INPUT = ConfigDict(extra="forbid", strict=True)


class UserCreate(BaseModel):
    """Body of POST /users."""

    model_config = _INPUT

    email: Email
    name: Name


class UserUpdate(BaseModel):
    """Body of PATCH /users/{id}: any non-empty subset of the fields; null is not a value."""

    model_config = _INPUT

    email: Email | None = None
    name: Name | None = None

    @field_validator("email", "name")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        # Runs only for fields the client sent: leaving one out keeps it, sending null is a mistake.
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one of email, name")
        return self


class UserPublic(BaseModel):
    """A user as clients see it."""

    id: int
    email: str
    name: str
    created_at: datetime
    updated_at: datetime


class FieldError(BaseModel):
    """One reason a request was refused."""

    loc: list[str | int] = Field(description="Where: body, query or path, then the field.")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details: every error response has this body, as application/problem+json."""

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["user 42 does not exist"])
    errors: list[FieldError] | None = Field(default=None, description="Field errors, on 422 only.")
