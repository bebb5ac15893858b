"""The registry of media nodes: who heartbeats, from where, carrying which sessions.

A media node says it is alive every `node_heartbeat_seconds` with its name, its address
and the sessions it carries (mediaserver/node_heartbeat.py). One silent for
`node_dead_seconds` is dead: its sessions are no longer routed to it, and its classes
wait for their encoders to reconnect elsewhere. A node whose go-live takes a session up
(the encoder reconnected to it) claims it at once (`take_up`); of the alive nodes that
claim a session, the one that took it up last carries it, so an old node still holding
on (started again, or cut off and back) never takes it back. Everything is in the
database, so every control process answers alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import CourseSession, MediaNodeRecord, MediaNodeSession

__all__ = [
    "NodeAddress",
    "NodeStatus",
    "alive_nodes",
    "carrier_of",
    "is_alive",
    "node_listing",
    "record_heartbeat",
    "take_up",
]


@dataclass(frozen=True)
class NodeAddress:
    name: str
    url: str


@dataclass(frozen=True)
class NodeStatus:
    name: str
    url: str
    alive: bool
    first_seen: datetime
    last_seen: datetime
    session_ids: tuple[int, ...]


def is_alive(last_seen: datetime, *, now: datetime, dead_after: timedelta) -> bool:
    """Heard from within `dead_after`: the one rule for alive and dead."""
    return now - last_seen <= dead_after


async def record_heartbeat(
    db: AsyncSession, *, name: str, url: str, session_ids: Iterable[int], now: datetime
) -> None:
    """The node `name` is alive at `url` and carries exactly `session_ids` now.

    Ids of sessions that no longer exist (deleted meanwhile) are left out, not refused: a
    heartbeat must never fail for what a node cannot know."""
    node = (
        await db.execute(
            select(MediaNodeRecord).where(MediaNodeRecord.name == name).with_for_update()
        )
    ).scalar_one_or_none()
    if node is None:
        node = MediaNodeRecord(name=name, url=url, first_seen=now, last_seen=now)
        db.add(node)
        await db.flush()
    else:
        node.url = url
        node.last_seen = now
    wanted = set(session_ids)
    existing = set(
        (await db.scalars(select(CourseSession.id).where(CourseSession.id.in_(wanted)))).all()
    ) if wanted else set()
    held = set(
        (await db.scalars(
            select(MediaNodeSession.session_id).where(MediaNodeSession.node_id == node.id)
        )).all()
    )
    gone = held - existing
    if gone:
        await db.execute(delete(MediaNodeSession).where(
            MediaNodeSession.node_id == node.id, MediaNodeSession.session_id.in_(gone)))
    db.add_all(MediaNodeSession(node_id=node.id, session_id=s, taken_at=now)
               for s in existing - held)


async def take_up(db: AsyncSession, *, name: str, session_id: int, now: datetime) -> bool:
    """The node `name` carries `session_id` from now on (its go-live): its claim is the
    newest. False when no node of that name ever beat (its first beat will claim it)."""
    node_id = await db.scalar(select(MediaNodeRecord.id).where(MediaNodeRecord.name == name))
    if node_id is None:
        return False
    claim = await db.get(MediaNodeSession, (node_id, session_id))
    if claim is None:
        db.add(MediaNodeSession(node_id=node_id, session_id=session_id, taken_at=now))
    else:
        claim.taken_at = now
    return True


async def carrier_of(
    db: AsyncSession, session_id: int, *, now: datetime, dead_after: timedelta
) -> NodeAddress | None:
    """The alive node carrying `session_id` (the one that took it up last, should a node
    that took over and the one it replaced both claim it), or None."""
    rows = await db.execute(
        select(MediaNodeRecord.name, MediaNodeRecord.url, MediaNodeRecord.last_seen)
        .join(MediaNodeSession, MediaNodeSession.node_id == MediaNodeRecord.id)
        .where(MediaNodeSession.session_id == session_id)
        .order_by(MediaNodeSession.taken_at.desc(), MediaNodeRecord.last_seen.desc())
    )
    for name, url, last_seen in rows:
        if is_alive(last_seen, now=now, dead_after=dead_after):
            return NodeAddress(name, url)
    return None


async def alive_nodes(
    db: AsyncSession, *, now: datetime, dead_after: timedelta
) -> list[NodeAddress]:
    """Every node heard from within `dead_after`, by name."""
    nodes = await db.scalars(
        select(MediaNodeRecord).where(MediaNodeRecord.last_seen >= now - dead_after)
        .order_by(MediaNodeRecord.name)
    )
    return [NodeAddress(n.name, n.url) for n in nodes]


async def node_listing(
    db: AsyncSession, *, now: datetime, dead_after: timedelta
) -> list[NodeStatus]:
    """Every node ever registered, alive or dead, with the sessions it last reported."""
    nodes = (await db.scalars(select(MediaNodeRecord).order_by(MediaNodeRecord.name))).all()
    carried: dict[int, list[int]] = {n.id: [] for n in nodes}
    for node_id, session_id in await db.execute(
        select(MediaNodeSession.node_id, MediaNodeSession.session_id)
        .order_by(MediaNodeSession.session_id)
    ):
        carried.setdefault(node_id, []).append(session_id)
    return [
        NodeStatus(
            name=n.name, url=n.url,
            alive=is_alive(n.last_seen, now=now, dead_after=dead_after),
            first_seen=n.first_seen, last_seen=n.last_seen,
            session_ids=tuple(carried[n.id]),
        )
        for n in nodes
    ]
