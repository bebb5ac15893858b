"""Chat tickets: issued to a caller the API has already signed in (or to anyone, for a
public chat), redeemed once by the WebSocket upgrade within seconds, stored as hashes.

Redeeming is a conditional UPDATE (`used_at IS NULL`), so two processes racing for the
same ticket cannot both win. Refusals are 401s with a code saying what was wrong.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import ApiError
from control.models import AuthToken, ChatTicket
from control.secrets_hashing import digest, new_secret

# Expired tickets are kept this long (to answer "expired" rather than "unknown"), then
# swept out when new tickets are issued.
KEEP_EXPIRED = timedelta(minutes=10)


def _refused(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def ticket_required() -> ApiError:
    return _refused(
        "ticket_required",
        "open the chat with a ticket: POST /sessions/{id}/chat-ticket, then"
        " GET /sessions/{id}/chat?ticket=... (sign-in tokens are not accepted in the address)",
    )


async def token_id(db: AsyncSession, authorization: str) -> int | None:
    """The id of the sign-in token in an Authorization header the API already accepted."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    found: int | None = await db.scalar(
        select(AuthToken.id).where(AuthToken.token_hash == digest(token.strip()))
    )
    return found


async def issue_ticket(
    db: AsyncSession,
    session_id: int,
    user_id: int | None,
    auth_token_id: int | None,
    now: datetime,
    ttl_seconds: int,
) -> tuple[str, datetime]:
    """A new ticket and when it expires."""
    await db.execute(delete(ChatTicket).where(ChatTicket.expires_at < now - KEEP_EXPIRED))
    ticket = new_secret("ct_")
    expires_at = now + timedelta(seconds=ttl_seconds)
    db.add(ChatTicket(ticket_hash=digest(ticket), session_id=session_id, user_id=user_id,
                      auth_token_id=auth_token_id, created_at=now, expires_at=expires_at))
    await db.flush()
    return ticket, expires_at


async def redeem_ticket(
    db: AsyncSession, ticket: str, session_id: int, now: datetime
) -> ChatTicket:
    """Use the ticket up for this session, or raise the 401 that says why not."""
    row = await db.scalar(select(ChatTicket).where(ChatTicket.ticket_hash == digest(ticket)))
    if row is None:
        raise _refused("ticket_invalid", "this chat ticket is unknown: ask for a new one")
    if row.session_id != session_id:
        # Not used up: the ticket still opens the chat it was issued for.
        raise _refused("ticket_wrong_session", "this chat ticket is for another session")
    if row.used_at is not None:
        raise _refused("ticket_used", "this chat ticket was already used: one per connection")
    if row.expires_at <= now:
        raise _refused("ticket_expired", "this chat ticket has expired: ask for a new one")
    used = await db.execute(
        update(ChatTicket)
        .where(ChatTicket.id == row.id, ChatTicket.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(used, "rowcount", 0) != 1:  # another process redeemed it meanwhile
        raise _refused("ticket_used", "this chat ticket was already used: one per connection")
    return row
