"""Media nodes: the ingest and live-origin processes that report to the control plane.

Each node heartbeats every few seconds with its address and the sessions it carries
(control/nodes/registry.py). Kept in the database, not in one control process's memory,
so any control process behind the load balancer knows which node holds a live session
and which node has gone silent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class MediaNodeRecord(Base):
    __tablename__ = "media_nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # Where the control plane reaches the node's internal routes (and the edge its origin).
    url: Mapped[str] = mapped_column(String(500))
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class MediaNodeSession(Base):
    """A session a node said it carries at its last heartbeat. Keyed by node and session,
    so each node only ever rewrites its own rows: two nodes claiming one session (the old
    one silent after a failover, or started again and still holding on) never conflict,
    and the alive claim taken last wins."""

    __tablename__ = "media_node_sessions"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("media_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: playback routing asks "which node carries session S?".
    session_id: Mapped[int] = mapped_column(
        ForeignKey("course_sessions.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # When the node took the session up: its first heartbeat naming it, or its go-live
    # (an encoder that reconnected to it). Later heartbeats leave it as it is.
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
