"""Checking a username and password, and the password work of registering.

Everything slow happens here, before the request's write transaction opens: the rate
limits are consulted first (a refused attempt costs no hashing), the account is read in
a short read of its own, and argon2 runs in the password thread pool, off the event loop
and outside the SQLite writer lock. The endpoint then only writes the token or the row.
"""

from __future__ import annotations

from dataclasses import dataclass

from control.accounts.passwords import Passwords
from control.accounts.sign_in_limits import SignInLimits
from control.accounts.user_accounts import find_user, username_taken
from control.db.database import Database
from control.errors import unauthorized

WRONG_CREDENTIALS = "wrong username or password"


@dataclass(frozen=True)
class VerifiedPassword:
    """An account whose password matched, and the hash it matched (to spot a change since)."""

    user_id: int
    password_hash: str


async def verify_credentials(
    database: Database, passwords: Passwords, limits: SignInLimits, dummy_hash: str, *,
    address: str, username: str, password: str,
) -> VerifiedPassword:
    """The account these credentials open; raises 401 (or 429 from the limits)."""
    attempt = await limits.before_login(address, username)
    async with database.transaction(write=False) as db:
        user = await find_user(db, username)
    if user is None:
        # As costly as a wrong password, so timing does not reveal who has an account.
        await passwords.verify_off_loop(dummy_hash, password)
        raise unauthorized(WRONG_CREDENTIALS)
    if not await passwords.verify_off_loop(user.password_hash, password) or not user.is_active:
        raise unauthorized(WRONG_CREDENTIALS)
    await limits.login_succeeded(attempt)
    return VerifiedPassword(user.id, user.password_hash)


async def new_account_hash(
    database: Database, passwords: Passwords, limits: SignInLimits, *,
    address: str, username: str, password: str,
) -> str:
    """The password hash for a self-registration, after its rate limit; a username
    already taken is refused before any hashing (the insert checks again)."""
    await limits.before_registration(address)
    async with database.transaction(write=False) as db:
        if await find_user(db, username) is not None:
            raise username_taken(username)
    return await passwords.hash_off_loop(password)
