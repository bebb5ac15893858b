"""Fuzz target: the request bodies and query strings of every API endpoint, without a server
(control/http/bodies.py and each endpoint's models).

The first byte picks a model; the rest is the raw body (parsed as `routing._read_body` does)
or, for query models, the query string. The only error allowed out is pydantic's
`ValidationError`, and the error middleware must turn it into a JSON-serialisable 400/422.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from pydantic import BaseModel, ValidationError

from control.app import all_endpoints
from control.http.error_middleware import validation_error


def _models(kind: str) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for endpoint in all_endpoints():
        model = endpoint.body if kind == "body" else endpoint.query
        if model is not None:
            found[f"{model.__module__}.{model.__qualname__}"] = model
    return [found[name] for name in sorted(found)]


BODIES = _models("body")
QUERIES = _models("query")


def _refused(exc: ValidationError) -> None:
    error = validation_error(exc)
    assert error.status in (400, 422)
    json.dumps({"error": {"code": error.code, "message": error.message, **error.extra}})


def check(data: bytes) -> None:
    if not data:
        return
    choice, raw = data[0], data[1:]
    if choice < 0xC0:
        model = BODIES[choice % len(BODIES)]
        try:
            model.model_validate_json(raw)
        except ValidationError as exc:
            _refused(exc)
        return
    query = QUERIES[choice % len(QUERIES)]
    # aiohttp's request.query keeps the first value of a repeated key.
    params: dict[str, str] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(key, value)
    try:
        query.model_validate(params)
    except ValidationError as exc:
        _refused(exc)
