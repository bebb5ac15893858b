"""Base classes for request bodies and query strings, validated by pydantic, and the number
and time types they share.

Bodies are strict: unknown fields and wrong JSON types are refused, never coerced. JSON has
one number type, though, so `3.0` is the integer 3 (as JSON Schema says) and `3.5` is not.
Query strings arrive as text, so they are parsed leniently and unknown keys ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, TypeVar

import pydantic_core
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    WithJsonSchema,
)

from control.errors import ApiError, bad_request

# Every integer column is PostgreSQL's 32-bit INTEGER: a larger number names no row and fits
# no column, so the API refuses it at the door (and says so in its OpenAPI document).
INT_MAX = 2**31 - 1

# The years a date may name (see `_dates_in_range`).
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999

# A row's id, in a body, a query string or a path.
Id = Annotated[int, Field(ge=1, le=INT_MAX)]

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


def parse_body(model: type[M], raw: bytes) -> M:
    """`raw` as `model`: 400 for malformed JSON, pydantic's ValidationError for a wrong shape."""
    try:
        data = pydantic_core.from_json(raw, allow_inf_nan=False)
    except ValueError:
        raise bad_request("the body is not valid JSON", "malformed_json") from None
    parsed = model.model_validate_json(pydantic_core.to_json(_whole_numbers(data)))
    return _dates_in_range(parsed)


def parse_query(model: type[M], query: Mapping[str, str]) -> M:
    return _dates_in_range(model.model_validate(dict(query)))


def _dates_in_range(parsed: M) -> M:
    """RFC 3339 runs from year 0000 to 9999, Python from 1 to 9999: a time at either end
    overflows when turned to UTC or moved by a class's length. No class is held there, so
    such a time is refused as out of range (a rule beside the schema, like an end before
    its start), not carried to a 500."""
    for name, field in type(parsed).model_fields.items():
        value = getattr(parsed, name)
        for moment in value if isinstance(value, list) else [value]:
            if isinstance(moment, datetime) and not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
                raise ApiError(
                    422, "date_out_of_range",
                    f"{field.alias or name}: dates run from {EARLIEST_YEAR} to {LATEST_YEAR}",
                )
    return parsed


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_timestamp(value: object) -> object:
    # Lax parsing would read "0.5" or "1700000000" as Unix time; the API documents dates only.
    if isinstance(value, str | int | float) and _NUMBER.fullmatch(str(value)):
        raise ValueError("expected a date and time such as 2026-01-31T09:00:00Z")
    return value


# A date and time in a query string (RFC 3339, as the OpenAPI document says); the first
# takes a time without a zone as UTC, the second refuses it.
QueryDateTime = Annotated[datetime, BeforeValidator(_not_a_timestamp)]
QueryAwareDateTime = Annotated[AwareDatetime, BeforeValidator(_not_a_timestamp)]

# A wall-clock time in a zone named beside it (a schedule's): RFC 3339 without the offset,
# which `format: date-time` does not allow, so the document gives its shape as a pattern
# (29 February left out, as the pattern cannot tell leap years).
LOCAL_DATE_TIME_PATTERN = (
    r"^[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?$"
)
LocalDateTime = Annotated[
    NaiveDatetime,
    WithJsonSchema({"type": "string", "pattern": LOCAL_DATE_TIME_PATTERN,
                    "examples": ["2026-01-31T09:00:00"]}),
]
