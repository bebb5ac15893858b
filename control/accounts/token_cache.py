"""A per-process cache of sign-in tokens already resolved to their user, for reads.

Resolving a bearer token is a query per request; on a hot read (the course list) it cost
about as much as the page itself. The API resolves tokens of read-only requests
(GET/HEAD/OPTIONS that are not audited) through this cache; writes always ask the database.

The price is revocation lag, bounded and stated here:
- an entry lives at most `ttl_seconds` (5 s by default) and never past the token's expiry;
- in this process, any change to a user row (role, password, deactivation: seen at flush)
  and any bulk UPDATE/DELETE of users or auth_tokens (logout, `revoke_all_for`) empties
  the cache at once and again when that transaction commits, so a lookup that raced the
  change cannot put the old answer back;
- another process's revocation (a second server on the same database): with Redis
  (several control processes), that process publishes the change once it commits and
  before its request answers, and this cache empties on receipt
  (control/accounts/token_revocations.py); while this process's subscription is not
  known to be up (Redis away, reconnecting), the cache is bypassed: every lookup asks
  the database. What remains is the time Redis takes to hand the message over (well
  under a millisecond on one network), and, if the revoking process alone cannot reach
  Redis while this one can, `ttl_seconds`. Without Redis (one process), `ttl_seconds`.

The cached user is a detached snapshot shared by concurrent requests: read it, never
change it or add it to a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached

from control.models import AuthToken, User

INFO_KEY = "token_cache"
_PENDING_KEY = "token_cache_clear_on_commit"
_WATCHED_TABLES = frozenset({"users", "auth_tokens"})


@dataclass(frozen=True, slots=True)
class _Entry:
    user: User
    fresh_until: float  # monotonic clock
    expires_at: float  # the token's own expiry, epoch seconds


class TokenCache:
    def __init__(
        self,
        ttl_seconds: float = 5.0,
        max_entries: int = 50_000,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._wall = wall
        self._entries: dict[str, _Entry] = {}
        # Bumped by every eviction: a lookup that started before one may not store.
        self.generation = 0
        # False while changes made elsewhere could go unheard (see `distrust`).
        self.trusted = True
        # Told when a change committed in this process emptied the cache (to publish it).
        self.on_committed_change: Callable[[], None] | None = None

    def get(self, token_hash: str) -> User | None:
        if not self.trusted:
            return None
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if self._monotonic() >= entry.fresh_until or self._wall() >= entry.expires_at:
            self._entries.pop(token_hash, None)
            return None
        return entry.user

    def put(self, token_hash: str, user: User, expires_at: datetime, generation: int) -> None:
        """Remember a lookup that started at `generation` (see `generation`)."""
        if generation != self.generation or self.ttl_seconds <= 0 or not self.trusted:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude, and rare: only past max_entries live tokens
        self._entries[token_hash] = _Entry(
            snapshot(user), self._monotonic() + self.ttl_seconds, expires_at.timestamp()
        )

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def distrust(self) -> None:
        """Changes made by other processes may go unheard: bypass the cache until `trust`."""
        self.trusted = False
        self.clear()

    def trust(self) -> None:
        """Changes made elsewhere are heard again; what was looked up before is dropped."""
        self.clear()  # also stops lookups that began while distrusted from storing
        self.trusted = True

    def committed_change(self) -> None:
        """A change to users or tokens committed in this process."""
        self.clear()
        if self.on_committed_change is not None:
            self.on_committed_change()

    def __len__(self) -> int:
        return len(self._entries)


def snapshot(user: User) -> User:
    """A detached copy of the user's columns, tied to no session."""
    copy = User(**{attr.key: getattr(user, attr.key) for attr in _user_columns()})
    make_transient_to_detached(copy)
    return copy


def _user_columns() -> list[Any]:
    return list(User.__mapper__.column_attrs)


def _cache_of(session: Session) -> TokenCache | None:
    cache = session.info.get(INFO_KEY)
    return cache if isinstance(cache, TokenCache) else None


def _changed(session: Session) -> None:
    cache = _cache_of(session)
    if cache is not None:
        cache.clear()
        session.info[_PENDING_KEY] = True


def _after_flush(session: Session, _context: Any) -> None:
    if any(isinstance(obj, User | AuthToken) for obj in (*session.dirty, *session.deleted)):
        _changed(session)


def _do_orm_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _WATCHED_TABLES:
        _changed(state.session)


def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING_KEY, False):
        cache = _cache_of(session)
        if cache is not None:
            cache.committed_change()


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def watch(session_class: type[Session]) -> None:
    """Make sessions of this class empty the cache in their `info` on user/token changes."""
    event.listen(session_class, "after_flush", _after_flush)
    event.listen(session_class, "do_orm_execute", _do_orm_execute)
    event.listen(session_class, "after_commit", _after_commit)
    event.listen(session_class, "after_rollback", _after_rollback)
