"""The secret of a person's private feed: issued on first ask, rotated, revoked."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import CalendarFeed, User
from control.models.base import utcnow


def _new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits: unguessable, URL-safe, 43 characters


async def feed_of(db: AsyncSession, user: User, *, create: bool) -> CalendarFeed | None:
    feed = await db.scalar(select(CalendarFeed).where(CalendarFeed.user_id == user.id))
    if feed is None and create:
        feed = CalendarFeed(user_id=user.id, secret=_new_secret(), created_at=utcnow())
        db.add(feed)
        await db.flush()
    return feed


async def rotate(db: AsyncSession, user: User) -> CalendarFeed:
    """A new secret: the old URL stops working at once."""
    feed = await feed_of(db, user, create=True)
    assert feed is not None
    feed.secret = _new_secret()
    feed.created_at = utcnow()
    await db.flush()
    return feed


async def revoke(db: AsyncSession, user: User) -> bool:
    feed = await feed_of(db, user, create=False)
    if feed is None:
        return False
    await db.delete(feed)
    await db.flush()
    return True


async def owner(db: AsyncSession, secret: str) -> User | None:
    """Whose feed this secret opens; None for an unknown (or revoked) one or a deactivated
    account."""
    user = await db.scalar(
        select(User).join(CalendarFeed, CalendarFeed.user_id == User.id)
        .where(CalendarFeed.secret == secret)
    )
    if user is None or not user.is_active:
        return None
    return user
