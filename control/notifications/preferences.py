"""Which channels a person wants: no row means every channel on (mail needs an address)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import NotificationPreference

__all__ = ["Channels", "channels_of", "set_channels"]


@dataclass(frozen=True)
class Channels:
    email: bool = True
    in_app: bool = True


async def channels_of(db: AsyncSession, user_ids: list[int]) -> dict[int, Channels]:
    """Every given person's channels (the default for those who never chose)."""
    found = {uid: Channels() for uid in user_ids}
    if not user_ids:
        return found
    rows = await db.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id.in_(user_ids))
    )
    for row in rows:
        found[row.user_id] = Channels(email=row.email, in_app=row.in_app)
    return found


async def set_channels(
    db: AsyncSession, user_id: int, *, email: bool | None = None, in_app: bool | None = None
) -> Channels:
    row = await db.get(NotificationPreference, user_id, with_for_update=True)
    if row is None:
        row = NotificationPreference(user_id=user_id, email=True, in_app=True)
        db.add(row)
    if email is not None:
        row.email = email
    if in_app is not None:
        row.in_app = in_app
    await db.flush()
    return Channels(email=row.email, in_app=row.in_app)
