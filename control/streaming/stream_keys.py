"""Stream keys: making, rotating and checking the secret a teacher pastes into OBS.

`authorize_publish` is the lookup the media server calls when an encoder publishes;
it answers with the course, or with why the key is refused, never with the key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import Settings
from control.models import Course, StreamKey
from control.models.base import utcnow
from control.secrets_hashing import digest, new_secret

KEY_PREFIX = "sk_"
PUBLISH_APP = "live"


class Refusal(enum.StrEnum):
    UNKNOWN_KEY = "unknown_key"
    REVOKED = "revoked"
    EXPIRED = "expired"
    WRONG_APP = "wrong_app"
    COURSE_INACTIVE = "course_inactive"


@dataclass(frozen=True)
class PublishGrant:
    course_id: int
    key_id: int


@dataclass(frozen=True)
class PublishRefused:
    reason: Refusal


def rtmp_url(settings: Settings) -> str:
    """The server URL to paste into OBS: same host people reach the web app on."""
    host = urlsplit(settings.public_url).hostname or settings.server.host
    return f"rtmp://{host}:{settings.streaming.rtmp_port}/{PUBLISH_APP}"


def new_key(course_id: int, label: str, created_by: int | None,
            expires_at: datetime | None) -> tuple[str, StreamKey]:
    key = new_secret(KEY_PREFIX)
    row = StreamKey(
        course_id=course_id,
        label=label,
        key_hash=digest(key),
        key_hint=key[: len(KEY_PREFIX) + 4],
        created_by=created_by,
        expires_at=expires_at,
    )
    return key, row


def rotate_key(row: StreamKey) -> str:
    """A fresh secret for the same key: the old one stops working at once."""
    key = new_secret(KEY_PREFIX)
    row.key_hash = digest(key)
    row.key_hint = key[: len(KEY_PREFIX) + 4]
    row.rotated_at = utcnow()
    return key


async def authorize_publish(
    db: AsyncSession, app: str, key: str, *, now: datetime | None = None
) -> PublishGrant | PublishRefused:
    now = now or utcnow()
    if app != PUBLISH_APP:
        return PublishRefused(Refusal.WRONG_APP)
    # Encoders may append ?query parameters to the key; they are not part of it.
    key = key.split("?", 1)[0]
    row = (
        await db.execute(select(StreamKey).where(StreamKey.key_hash == digest(key)))
    ).scalar_one_or_none()
    if row is None:
        return PublishRefused(Refusal.UNKNOWN_KEY)
    if row.revoked_at is not None:
        return PublishRefused(Refusal.REVOKED)
    if row.expires_at is not None and row.expires_at <= now:
        return PublishRefused(Refusal.EXPIRED)
    course = await db.get(Course, row.course_id)
    if course is None or not course.is_active:
        return PublishRefused(Refusal.COURSE_INACTIVE)
    row.last_used_at = now
    return PublishGrant(course_id=row.course_id, key_id=row.id)
