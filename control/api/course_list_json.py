"""The course list's rows (plain driver tuples, see course_list_query) as the API's JSON.

An item is the same as `courses.course_json` gives for the same course; the values
arrive as the driver hands them: SQLite gives datetimes as text and booleans as 0/1,
PostgreSQL naive datetime and bool objects; datetimes are stored as UTC without a zone.

Encoding the items was a fifth of a list request's cost, and the catalog's pages repeat,
so each item's JSON text is remembered, keyed by every value of its row: any change to
the course (its title, its enrolled count, its teacher's name...) is a new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control.api.responses import dumps
from control.time_format import iso_z, stored_utc


def _id_list(text: str | None) -> list[int]:
    return sorted(int(part) for part in text.split(",")) if text else []


def course_item(row: Sequence[Any], public_url: str) -> dict[str, Any]:
    (course_id, title, description, teacher_id, category_id, access_level, capacity,
     price_cents, currency, chat_mode, vod_channel_id, is_live, is_active, created_at,
     updated_at, username, display_name, category_name, enrolled, prerequisite_ids) = row
    return {
        "id": course_id,
        "title": title,
        "description": description,
        "teacher": {"id": teacher_id, "username": username, "display_name": display_name},
        "category": {"id": category_id, "name": category_name},
        "access_level": access_level,
        "capacity": capacity,
        "enrolled_count": enrolled,
        "seats_left": max(capacity - enrolled, 0),
        "price_cents": price_cents,
        "currency": currency or None,
        "prerequisite_ids": _id_list(prerequisite_ids),
        "chat_mode": chat_mode,
        "vod_channel_id": vod_channel_id,
        "is_live": bool(is_live),
        "is_active": bool(is_active),
        "live_iframe": (
            f'<iframe src="{public_url}/embed/{course_id}" width="960" height="540"'
            ' allow="autoplay; fullscreen" allowfullscreen></iframe>'
        ),
        "created_at": iso_z(stored_utc(created_at)),
        "updated_at": iso_z(stored_utc(updated_at)),
    }


def cursor_value(row: Sequence[Any], field: str) -> Any:
    """The sort key of a row as the cursor stores it (created_at: ISO with +00:00)."""
    if field == "created_at":
        return stored_utc(row[13]).isoformat()
    return row[0] if field == "id" else row[1]


class RenderedItems:
    """Items' JSON text by row; emptied when it holds more than `max_chars` of text."""

    def __init__(self, max_chars: int = 8_000_000) -> None:
        self.max_chars = max_chars
        self._texts: dict[tuple[Any, ...], str] = {}
        self._chars = 0

    def text(self, row: Sequence[Any], public_url: str) -> str:
        key = (public_url, *row)
        found = self._texts.get(key)
        if found is None:
            found = dumps(course_item(row, public_url))
            # The key holds about as much text again (the description mostly).
            size = 2 * len(found)
            if self._chars + size > self.max_chars:
                self._texts.clear()
                self._chars = 0
            self._texts[key] = found
            self._chars += size
        return found

    def __len__(self) -> int:
        return len(self._texts)


def page_body(items: list[str], next_url: str | None) -> str:
    """The list's response body, as `responses.dumps` would write it."""
    return '{"results":[' + ",".join(items) + '],"next":' + dumps(next_url) + "}"
