"""/openapi.json describes exactly the routes the router serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from openapi_spec_validator import validate

from control.http.bodies import INT_MAX
from control.web.pages import ASSETS_PREFIX, PAGES
from support.api_client import Api


async def test_openapi_matches_the_router(api: Api) -> None:
    document = await api.get("/openapi.json", expect=200)

    def fold(path: str) -> str:
        # Digits-only patterns and trailing-slash twins are one documented route.
        return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path).rstrip("/")

    described = {
        (method.upper(), fold(path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = set()
    for route in api.client.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path != "/openapi.json" and route.method != "HEAD":
            served.add((route.method, fold(path)))
    # The chat WebSocket and the web pages are served beside the JSON endpoints, not
    # described as ones.
    beside = {("GET", "/sessions/{session_id}/chat")} | {("GET", fold(p)) for p in PAGES}
    beside |= {(m, p) for m, p in served if p.startswith(ASSETS_PREFIX)}
    assert served - beside == described
    assert ("GET", "/sessions/{session_id}/chat") in served
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert operation["summary"], path
            assert operation["operationId"]
            for name in re.findall(r"\{(\w+)\}", path):
                assert name in [p["name"] for p in operation.get("parameters", [])]


async def test_bodies_are_described(api: Api) -> None:
    document = await api.get("/openapi.json", expect=200)
    create = document["paths"]["/courses/"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"title", "category_id"} <= set(schema["required"])
    assert schema["additionalProperties"] is False


async def test_optional_bodies_are_described_as_optional(api: Api) -> None:
    document = await api.get("/openapi.json", expect=200)
    enroll = document["paths"]["/courses/{course_id}/enroll"]["post"]
    assert enroll["requestBody"]["required"] is False
    ref = enroll["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert "invite_code" in document["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]


async def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    document = await api.get("/openapi.json", expect=200)
    # The validator follows every $ref: one to a missing #/$defs/... fails here.
    validate(document)
    assert "$defs" not in json.dumps(document)


def _integers(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            yield where, node
        for key, value in node.items():
            yield from _integers(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _integers(value, f"{where}/{i}")


async def test_every_integer_the_api_takes_fits_its_columns(api: Api) -> None:
    # Ids and counts land in 32-bit INTEGER columns (PostgreSQL): a larger number is refused
    # by its declared maximum, never passed to the database.
    document = await api.get("/openapi.json", expect=200)
    integers = list(_integers(document))
    assert len(integers) > 40
    for where, schema in integers:
        assert schema.get("maximum", INT_MAX + 1) <= INT_MAX, where


async def test_query_parameters_never_say_null(api: Api) -> None:
    document = await api.get("/openapi.json", expect=200)
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                assert "null" not in json.dumps(parameter["schema"]), (path, parameter)
