"""The OpenAPI 3.1 description of every declared endpoint, from the same table that routes."""

from __future__ import annotations

import re
from typing import Any

from control.http.bodies import INT_MAX
from control.http.routing import Endpoint

_PARAM = re.compile(r"\{(\w+)\}")
_REFS = "#/components/schemas/{model}"
# Path ids: the router matches digits only, and a number past INT_MAX names no row (404).
PATH_ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": INT_MAX}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _operation(endpoint: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": endpoint.name,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "responses": {
            "2XX": {"description": "success"},
            "default": {
                "description": "error",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                },
            },
        },
    }
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": dict(PATH_ID_SCHEMA)}
        for name in _PARAM.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        query_schema = endpoint.query.model_json_schema(ref_template=_REFS)
        schemas.update(query_schema.pop("$defs", {}))
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            params.append({
                "name": name, "in": "query", "required": name in required,
                "schema": _query_value(prop),
            })
    if params:
        op["parameters"] = params
    if endpoint.body is not None:
        schema = endpoint.body.model_json_schema(ref_template=_REFS)
        schemas.update(schema.pop("$defs", {}))
        schemas[endpoint.body.__name__] = schema
        op["requestBody"] = {
            "required": not endpoint.body_optional,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{endpoint.body.__name__}"}
                }
            },
        }
    if endpoint.stream_body is not None:
        op["requestBody"] = {
            "required": True,
            "description": endpoint.stream_body,
            "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}},
        }
        error = {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}
        op["responses"]["413"] = {"description": "the body passed the size cap", **error}
        op["responses"]["415"] = {"description": "a type not accepted", **error}
        op["responses"]["429"] = {"description": "too many uploads of yours at once",
                                   **error}
    if not endpoint.public:
        op["security"] = [{"bearer": []}]
    return op


def _query_value(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: a query string cannot say null, leaving it out does."""
    prop = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
    branches = [b for b in prop.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        prop.update(branches[0])
    elif branches:
        prop["anyOf"] = branches
    return prop


def openapi_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Academia Live control plane", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
