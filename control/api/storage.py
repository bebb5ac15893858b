"""Storage, for admins: what it holds (GET /storage) and how long a course's recordings
are kept (PUT /courses/{id}/retention). The job that applies the policy is
control/storage_policy/enforcement.py."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from control.errors import ApiError, not_found
from control.http.bodies import Body
from control.http.responses import json
from control.http.routing import Before, Ctx, Routes
from control.models import Course, Role
from control.storage_policy.facts import live_session_ids, session_facts
from control.storage_policy.media_store import StoredObject
from control.storage_policy.report import storage_report
from control.storage_policy.usage import measure

routes = Routes("storage")


class RetentionBody(Body):
    # null keeps the course's recordings until storage is full.
    retention_days: int | None = Field(ge=1, le=36_500)


async def list_storage(pre: Before) -> list[StoredObject]:
    """The listing, before the transaction: a long bucket listing holds no connection."""
    pre.require_role(Role.ADMIN)
    store = pre.state.media_store
    if store is None:
        raise ApiError(503, "storage_unavailable", "this process has no access to storage")
    return await store.objects()


@routes.route("GET", "/storage", name="storage.usage", prepare=list_storage,
              summary="Bytes in storage by kind, course and session, against the limit (admin)")
async def usage(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    used = measure(ctx.prepared, await live_session_ids(ctx.db))
    facts = await session_facts(ctx.db, used.by_session)
    return json(storage_report(used, facts, ctx.state.settings))


@routes.route("PUT", "/courses/{course_id}/retention", name="storage.retention",
              body=RetentionBody,
              summary="How many days a course's recordings are kept; null: forever (admin)")
async def set_retention(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    course = await ctx.db.get(Course, ctx.param("course_id"))
    if course is None:
        raise not_found("course")
    course.retention_days = ctx.parsed(RetentionBody).retention_days
    ctx.audit_detail["retention_days"] = course.retention_days
    return json({"course_id": course.id, "retention_days": course.retention_days})
