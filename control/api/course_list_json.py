"""The course list's rows (plain driver tuples, see course_list_query) as the page's JSON.

Each item is `course_json.course_json` of its row, the one definition the single-course
view uses too; datetimes are stored as UTC without a zone.

Encoding the items was a fifth of a list request's cost, and the catalog's pages repeat,
so each item's JSON text is remembered, keyed by every value of its row: any change to
the course (its title, its enrolled count, its teacher's name...) is a new key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from control.api.course_json import course_json
from control.http.responses import dumps
from control.time_format import stored_utc


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
            found = dumps(course_json(row, public_url))
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
