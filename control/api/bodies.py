"""Base classes for request bodies and query strings, validated by pydantic.

Bodies are strict: unknown fields and wrong JSON types are refused, never coerced.
Query strings arrive as text, so they are parsed leniently and unknown keys ignored.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")
