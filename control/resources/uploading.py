"""Taking an upload: the bytes as they arrive, stopped at the cap (413), their type read
from the first bytes (415), then streamed on to storage under a fresh key.

Nothing reaches storage before the type is known, and a body that passes the cap
later makes the store drop what it had (the `ResourceStore` contract), so a refused
upload leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from control.errors import ApiError, unprocessable
from control.resources.content_types import HEAD_BYTES, detect_type
from control.resources.filenames import extension_of, safe_filename
from control.resources.resource_store import RESOURCES_PREFIX, ResourceStore

__all__ = ["StoredFile", "check_declared_length", "store_upload", "too_large"]

MB = 1_000_000


@dataclass(frozen=True)
class StoredFile:
    key: str
    filename: str
    content_type: str
    size_bytes: int


def too_large(limit_bytes: int) -> ApiError:
    return ApiError(413, "too_large",
                    f"a resource may hold at most {limit_bytes // MB} MB (resource_max_mb)")


def check_declared_length(content_length: int | None, limit_bytes: int) -> None:
    """Refuse at once what says it is too large, before reading a byte."""
    if content_length is not None and content_length > limit_bytes:
        raise too_large(limit_bytes)


async def _capped(chunks: AsyncIterator[bytes], limit_bytes: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit_bytes:
            raise too_large(limit_bytes)
        yield chunk


async def _then(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for chunk in rest:
        yield chunk


async def store_upload(store: ResourceStore, chunks: AsyncIterator[bytes], *,
                       course_id: int, filename: str, limit_bytes: int) -> StoredFile:
    """Check and store one upload; raises ApiError 413, 415 or 422 (empty)."""
    name = safe_filename(filename)
    body = _capped(chunks, limit_bytes)
    head = b""
    complete = False
    while len(head) < HEAD_BYTES:
        try:
            head += await anext(body)
        except StopAsyncIteration:
            complete = True
            break
    if not head:
        raise unprocessable("the file is empty", "empty_file")
    detected = detect_type(head[:HEAD_BYTES], extension_of(name), complete=complete)
    if not extension_of(name):
        name = f"{name}.{detected.extension}"
    key = f"{RESOURCES_PREFIX}{course_id}/{uuid.uuid4().hex}.{detected.extension}"
    size = await store.save(key, _then(head, body), detected.content_type)
    return StoredFile(key, name, detected.content_type, size)
