"""Sign-in tokens: issue, resolve to a user, revoke."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import AuthToken, User
from control.models.base import utcnow
from control.secrets_hashing import digest, new_secret


async def issue_token(db: AsyncSession, user: User, ttl_seconds: int) -> tuple[str, AuthToken]:
    token = new_secret("at_")
    row = AuthToken(
        token_hash=digest(token),
        user_id=user.id,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    db.add(row)
    await db.flush()
    return token, row


async def resolve_token(db: AsyncSession, token: str) -> User | None:
    """The active user behind a live token, or None."""
    now = utcnow()
    result = await db.execute(
        select(User)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(
            AuthToken.token_hash == digest(token),
            AuthToken.revoked_at.is_(None),
            AuthToken.expires_at > now,
            User.is_active.is_(True),
        )
    )
    return result.scalar_one_or_none()


async def revoke_token(db: AsyncSession, token: str) -> None:
    await db.execute(
        update(AuthToken).where(AuthToken.token_hash == digest(token)).values(revoked_at=utcnow())
    )


async def revoke_all_for(db: AsyncSession, user_id: int) -> None:
    """When an account is deactivated or its password changes, every session ends."""
    await db.execute(
        update(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
