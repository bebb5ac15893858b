"""Opaque cursors for keyset pagination: the sort key and id of the last row seen, and
the `next` link of a page that carries one."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from control.errors import bad_request
from control.http.bodies import INT_MAX


def encode_cursor(sort: str, value: Any, row_id: int) -> str:
    raw = json.dumps([sort, value, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def next_link(request: web.Request, sort: str, value: Any, row_id: int) -> str:
    """The next page's URL: this request's path and query, the cursor now after the last
    row given (its sort `value` and `row_id`)."""
    params = {k: v for k, v in request.query.items() if k != "cursor"}
    params["cursor"] = encode_cursor(sort, value, row_id)
    return str(request.rel_url.with_query(params))


def decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, row_id = json.loads(raw)
    except (ValueError, TypeError, RecursionError):  # RecursionError: "[[[[..." nested deep
        raise bad_request("the cursor is not one this server gave", "bad_cursor") from None
    if cursor_sort != sort:
        raise bad_request("the cursor belongs to another sort order", "bad_cursor")
    # Ids and numbers the database cannot hold were never given out.
    if not (_fits(row_id) and (_fits(value) or not isinstance(value, int))):
        raise bad_request("the cursor is not one this server gave", "bad_cursor")
    return value, row_id


def _fits(number: Any) -> bool:
    return isinstance(number, int) and not isinstance(number, bool) and 0 <= number <= INT_MAX
