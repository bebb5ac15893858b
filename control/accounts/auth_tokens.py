"""Sign-in tokens: issue, resolve to a user (also through the per-process cache), revoke.

Revoking empties the process's token cache (control/accounts/token_cache.py watches the UPDATEs
below), so a token logged out here is refused at once by this process, and, with Redis, by
every other control process (control/accounts/token_revocations.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.accounts.token_cache import TokenCache
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


def _live_token_user(token_hash: str) -> Select[User, datetime]:
    return (
        select(User, AuthToken.expires_at)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(
            AuthToken.token_hash == token_hash,
            AuthToken.revoked_at.is_(None),
            AuthToken.expires_at > utcnow(),
            User.is_active.is_(True),
        )
    )


async def resolve_token(db: AsyncSession, token: str) -> User | None:
    """The active user behind a live token, or None."""
    row = (await db.execute(_live_token_user(digest(token)))).first()
    return None if row is None else row[0]


async def resolve_token_cached(db: AsyncSession, cache: TokenCache, token: str) -> User | None:
    """As `resolve_token`, answered from `cache` when it can (reads only: see token_cache)."""
    token_hash = digest(token)
    user = cache.get(token_hash)
    if user is not None:
        return user
    generation = cache.generation
    row = (await db.execute(_live_token_user(token_hash))).first()
    if row is None:
        return None
    user, expires_at = row
    cache.put(token_hash, user, expires_at, generation)
    return user


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
