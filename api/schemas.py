"""Request and response bodies: what a client may send, and what it gets back."""

from datetime import datetime
from typing import Annotated, Any, Self

import jsonschema_rs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint: users' ids and versions
EMAIL_MAX_LENGTH = 320  # RFC 3696 (64 local + @ + 255 domain); users_email_length_check holds the same
NAME_MAX_LENGTH = 200  # users_name_length_check holds the same

# White space as Python's str.isspace() (and so str.strip()) has it, spelled out: `\s` means something
# else in each regex dialect (ECMA-262's, which OpenAPI's `pattern` uses, leaves out \x1c-\x1f and \x85
# and adds \ufeff), and these patterns are documented exactly as they are checked.
_NON_ASCII_SPACES = r"\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20" + _NON_ASCII_SPACES
# No NUL anywhere, and at least one character that is not white space: what _no_nul and _not_blank check.
NAME_PATTERN = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"

# An email is what JSON Schema's `idn-email` format means (RFC 6531: RFC 5321 addresses, with Unicode),
# narrowed by a pattern: no white space or control characters, and a dotted domain. The document says
# this and the API checks it with one JSON Schema validator, so the two cannot drift apart. Not
# email-validator: it has rules of its own (it refuses domain literals and numeric top-level domains,
# which idn-email allows), so the document would no longer say what is checked. Not `format: email`:
# that one is ASCII only, and users-api has always taken addresses such as élodie@example.com.
_NOT_IN_EMAILS = r"@\x00-\x20\x7f-\x9f" + _NON_ASCII_SPACES
EMAIL_SCHEMA = {
    "format": "idn-email",
    "pattern": rf"^[^{_NOT_IN_EMAILS}]+@[^.{_NOT_IN_EMAILS}]+(?:\.[^.{_NOT_IN_EMAILS}]+)+$",
}
_valid_email = jsonschema_rs.validator_for({"type": "string", **EMAIL_SCHEMA}, validate_formats=True).is_valid


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; refusing it here keeps the 422 from becoming a 500.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


def _is_email(value: str) -> str:
    if not _valid_email(value):
        raise ValueError("must be an email address such as ada@example.com")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


CheckedEmail = Annotated[
    str, StringConstraints(max_length=EMAIL_MAX_LENGTH), AfterValidator(_no_nul), AfterValidator(_is_email)
]
EMAIL_DESCRIPTION = "No spaces or control characters; a dotted domain."
Email = Annotated[
    CheckedEmail,
    Field(
        examples=["ada@example.com"],
        description=f"Unique, compared case-insensitively. {EMAIL_DESCRIPTION}",
        json_schema_extra=EMAIL_SCHEMA,
    ),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=NAME_MAX_LENGTH),
    AfterValidator(_no_nul),
    AfterValidator(_not_blank),
    Field(
        examples=["Ada Lovelace"],
        description="Not blank; no NUL character (U+0000).",
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]

_INPUT = ConfigDict(extra="forbid", strict=True)


class UserCreate(BaseModel):
    """Body of POST /users."""

    model_config = _INPUT

    email: Email
    name: Name


def _a_non_empty_subset(schema: dict[str, Any]) -> None:
    # None is how the model tells a field left out; it is not a value, so neither it nor a default shows.
    schema["minProperties"] = 1
    for field in schema["properties"].values():
        field.pop("default", None)


class UserUpdate(BaseModel):
    """Body of PATCH /users/{id}: any non-empty subset of the fields; null is not a value."""

    model_config = _INPUT | ConfigDict(json_schema_extra=_a_non_empty_subset)

    email: Email | SkipJsonSchema[None] = None
    name: Name | SkipJsonSchema[None] = None

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

    id: Annotated[int, Field(ge=1, json_schema_extra={"format": "int64"})]
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
