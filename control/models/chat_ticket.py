"""Chat tickets: one-time passes for opening a session's chat WebSocket.

Browsers cannot set headers on a WebSocket, so the chat address carries a credential in
its query string, where proxies and access logs keep it. A ticket is good for one
upgrade, for one session, for seconds (not the day a sign-in token lives), and only its
hash is stored. Kept in the database so any control process can redeem a ticket another
one issued, and a redemption there is final for all of them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class ChatTicket(Base):
    __tablename__ = "chat_tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("course_sessions.id", ondelete="CASCADE")
    )
    # Both None for an anonymous reader of a public chat.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    # The sign-in token it was issued under: the socket lives only as long as that token.
    auth_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("auth_tokens.id", ondelete="CASCADE"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Indexed: issuing a ticket sweeps out the long-expired ones.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)
