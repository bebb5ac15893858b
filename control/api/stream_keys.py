"""Stream keys of a course, for its teacher and admins; the secret is shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, Field
from sqlalchemy import select

from control.api.live_notice import notify_keys_revoked
from control.courses.permissions import managed_course
from control.errors import conflict, not_found, unprocessable
from control.http.bodies import Body
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import StreamKey
from control.models.base import utcnow
from control.streaming.stream_keys import new_key, rotate_key, rtmp_url

routes = Routes("stream-keys")


class StreamKeyBody(Body):
    label: str = Field(default="", max_length=100)
    expires_at: AwareDatetime | None = None


class StreamKeyPatch(Body):
    label: str = Field(max_length=100)


def key_json(row: StreamKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "course_id": row.course_id,
        "label": row.label,
        "key_hint": row.key_hint + "…",
        "created_at": row.created_at,
        "rotated_at": row.rotated_at,
        "revoked_at": row.revoked_at,
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "active": row.revoked_at is None and (row.expires_at is None or row.expires_at > utcnow()),
    }


def _with_secret(ctx: Ctx, row: StreamKey, key: str) -> dict[str, Any]:
    # The only responses that carry the secret: creation and rotation, to the course's staff.
    server = rtmp_url(ctx.state.settings)
    return {
        **key_json(row),
        "key": key,
        "rtmp_url": server,
        "obs": {"service": "Custom...", "server": server, "stream_key": key},
    }


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise unprocessable("expires_at must be in the future")


@routes.route("POST", "/courses/{course_id}/stream-keys", name="stream_keys.create",
              body=StreamKeyBody, summary="Create a stream key; the key is returned only now")
async def create(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    body = ctx.parsed(StreamKeyBody)
    _check_expiry(body.expires_at)
    key, row = new_key(course.id, body.label, ctx.me.id, body.expires_at)
    ctx.db.add(row)
    await ctx.db.flush()
    ctx.audit_detail["stream_key_id"] = row.id
    return json(_with_secret(ctx, row, key), status=201)


@routes.route("GET", "/courses/{course_id}/stream-keys", name="stream_keys.list",
              summary="List a course's stream keys (without secrets)")
async def list_keys(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    rows = await ctx.db.scalars(
        select(StreamKey).where(StreamKey.course_id == course.id).order_by(StreamKey.id)
    )
    return json({"results": [key_json(r) for r in rows], "rtmp_url": rtmp_url(ctx.state.settings)})


async def _key(ctx: Ctx) -> StreamKey:
    row = await ctx.db.get(StreamKey, ctx.param("key_id"))
    if row is None:
        raise not_found("stream key")
    # 404 for a course the caller cannot see, 403 for one they cannot manage.
    await managed_course(ctx.db, ctx.me, row.course_id)
    return row


async def _revoked(ctx: Ctx) -> StreamKey:
    row = await _key(ctx)
    if row.revoked_at is None:  # revoking twice keeps the first time
        row.revoked_at = utcnow()
    # An encoder already live on the key is disconnected too (told once this commits).
    notify_keys_revoked(ctx, {row.course_id: [row.id]})
    return row


@routes.route("PATCH", "/stream-keys/{key_id}", name="stream_keys.update", body=StreamKeyPatch,
              summary="Relabel a stream key")
async def relabel(ctx: Ctx) -> Any:
    row = await _key(ctx)
    row.label = ctx.parsed(StreamKeyPatch).label
    return json(key_json(row))


@routes.route("POST", "/stream-keys/{key_id}/rotate", name="stream_keys.rotate",
              summary="Replace a key's secret; the old one stops working at once and an"
              " encoder live on it is disconnected")
async def rotate(ctx: Ctx) -> Any:
    row = await _key(ctx)
    if row.revoked_at is not None:
        raise conflict("revoked", "a revoked key cannot be rotated; create a new one")
    key = rotate_key(row)
    # The encoder live on the old secret is disconnected; it comes back with the new one.
    notify_keys_revoked(ctx, {row.course_id: [row.id]})
    return json(_with_secret(ctx, row, key))


@routes.route("POST", "/stream-keys/{key_id}/revoke", name="stream_keys.revoke",
              summary="Revoke a stream key for good; an encoder live on it is disconnected")
async def revoke(ctx: Ctx) -> Any:
    return json(key_json(await _revoked(ctx)))


@routes.route("DELETE", "/stream-keys/{key_id}", name="stream_keys.delete",
              summary="Revoke a stream key (kept for the record)")
async def delete(ctx: Ctx) -> Any:
    await _revoked(ctx)
    return no_content()
