"""The audit trail, for admins: who wrote what, and who read which roster."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import select

from control.http.bodies import Id, Query, QueryAwareDateTime
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import AuditEntry, Role

routes = Routes("audit")


class AuditQuery(Query):
    actor_id: Id | None = None
    action: str | None = None
    since: QueryAwareDateTime | None = None
    before_id: Id | None = None
    limit: int = Field(default=100, ge=1, le=1000)


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "actor_id": entry.actor_id,
        "action": entry.action,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "detail": entry.detail,
    }


@routes.route("GET", "/audit", name="audit.list", query=AuditQuery,
              summary="The audit log, newest first (admin)")
async def list_audit(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    q = ctx.parsed_query(AuditQuery)
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(q.limit)
    if q.actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == q.actor_id)
    if q.action:
        stmt = stmt.where(AuditEntry.action == q.action)
    if q.since is not None:
        stmt = stmt.where(AuditEntry.at >= q.since)
    if q.before_id is not None:
        stmt = stmt.where(AuditEntry.id < q.before_id)
    rows = (await ctx.db.scalars(stmt)).all()
    return json({"results": [entry_json(e) for e in rows]})
