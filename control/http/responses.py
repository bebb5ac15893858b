"""JSON responses: compact, with datetimes as ISO 8601 in UTC ("...Z")."""

from __future__ import annotations

import json as stdlib_json
from datetime import datetime
from typing import Any

from aiohttp import web

from control.time_format import iso_z


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(data: Any) -> str:
    return stdlib_json.dumps(data, default=_default, separators=(",", ":"))


def json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def no_content() -> web.Response:
    return web.Response(status=204)
