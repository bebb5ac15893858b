"""Creating and finding accounts, shared by the API and the command line."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.accounts.passwords import Passwords
from control.errors import ApiError, conflict
from control.models import Role, User


async def find_user(db: AsyncSession, username: str) -> User | None:
    result = await db.execute(select(User).where(func.lower(User.username) == username.lower()))
    return result.scalar_one_or_none()


async def create_user(
    db: AsyncSession,
    passwords: Passwords,
    *,
    username: str,
    password: str,
    role: Role,
    email: str = "",
    display_name: str = "",
) -> User:
    """For the command line and first start: hashes inline (no event loop to keep free)."""
    return await add_user(
        db, username=username, password_hash=passwords.hash(password), role=role,
        email=email, display_name=display_name,
    )


async def add_user(
    db: AsyncSession,
    *,
    username: str,
    password_hash: str,
    role: Role,
    email: str = "",
    display_name: str = "",
) -> User:
    """A new account whose password was hashed beforehand (the API hashes off the loop)."""
    # Usernames are unique regardless of case, so "Ana" cannot impersonate "ana".
    if await find_user(db, username) is not None:
        raise username_taken(username)
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        email=email,
        display_name=display_name,
    )
    db.add(user)
    await db.flush()
    return user


def username_taken(username: str) -> ApiError:
    return conflict("username_taken", f"the username {username!r} is taken")


async def count_users(db: AsyncSession) -> int:
    return int(await db.scalar(select(func.count(User.id))) or 0)
