"""Enrollments: students joining courses, teachers approving, seeding and removing them,
rosters, and each enrollment's history.

The use cases live in control.enrolment.enrolling (status changes through control.enrolment.states,
who is admitted, waitlisted or promoted by control.enrolment.rules); these handlers
parse, check who asks, call and answer. Every handler that may take or free a seat locks
the course row first, so seat counts are exact under concurrency on PostgreSQL (SQLite
serialises writers anyway).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import select

from control.courses.permissions import can_view, is_staff, managed_course
from control.db.course_locks import lock_course
from control.enrolment.enrolling import (
    approve_request,
    enroll_by_staff,
    enroll_self,
    find_enrollment,
    give_up_place,
)
from control.enrolment.states import Action, move
from control.errors import ApiError, forbidden, not_found
from control.http.bodies import Body, Id, Query
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import (
    Course,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Role,
    User,
)

routes = Routes("enrollments")
S = EnrollmentStatus


class EnrollBody(Body):
    invite_code: str | None = Field(default=None, min_length=1, max_length=64)


class StudentRef(Body):
    student_id: Id


class StatusQuery(Query):
    status: EnrollmentStatus | None = None


def enrollment_json(enrollment: Enrollment) -> dict[str, Any]:
    return {
        "id": enrollment.id,
        "course_id": enrollment.course_id,
        "student_id": enrollment.student_id,
        "status": enrollment.status.value,
        "queued_at": enrollment.queued_at,
        "paid": enrollment.paid,
        "created_at": enrollment.created_at,
        "updated_at": enrollment.updated_at,
    }


def event_json(event: EnrollmentEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "actor_id": event.actor_id,
        "reason": event.reason,
        "at": event.at,
    }


async def _load(ctx: Ctx, *, lock: bool) -> tuple[Enrollment, Course]:
    """The enrollment in the path and its course (the course row locked if asked).

    The course is locked before the enrollment is read, so the enrollment seen is the
    latest committed one.
    """
    enrollment_id = ctx.param("enrollment_id")
    course_id = await ctx.db.scalar(
        select(Enrollment.course_id).where(Enrollment.id == enrollment_id)
    )
    if course_id is None:
        raise not_found("enrollment")
    if lock:
        await lock_course(ctx.db, course_id)
    course = await ctx.db.get(Course, course_id)
    enrollment = await ctx.db.get(Enrollment, enrollment_id)
    assert course is not None and enrollment is not None  # FKs cascade deletes
    return enrollment, course


async def _deny(ctx: Ctx, course: Course, enrollment: Enrollment, message: str) -> ApiError:
    """403 for those who may see the course (or own the enrollment), else 404."""
    user = ctx.me
    if user.id == enrollment.student_id or await can_view(ctx.db, user, course):
        return forbidden(message)
    return not_found("enrollment")


async def _require_staff(ctx: Ctx, course: Course, enrollment: Enrollment) -> User:
    if not is_staff(ctx.me, course):
        raise await _deny(
            ctx, course, enrollment, "only the course's teacher or an admin may do this"
        )
    return ctx.me


async def _require_reader(ctx: Ctx, course: Course, enrollment: Enrollment) -> None:
    if ctx.me.id != enrollment.student_id and not is_staff(ctx.me, course):
        raise await _deny(
            ctx, course, enrollment,
            "only the student, the course's teacher or an admin may see this enrollment",
        )


@routes.route("POST", "/courses/{course_id}/enroll", name="enrollments.enroll",
              body=EnrollBody, body_optional=True,
              summary="Enroll yourself (students). Optional body {\"invite_code\"} for"
              " restricted courses (hidden ones answer 404 without one of their codes)."
              " 201 with the new enrollment; 200 with the existing one when you already"
              " hold a place; 403 removed_from_course after the teacher removed you")
async def enroll(ctx: Ctx) -> Any:
    me = ctx.me
    if me.role != Role.STUDENT:
        raise forbidden(
            "only students enroll themselves; a course's teacher or an admin uses"
            " /courses/{course_id}/enroll-student"
        )
    body = ctx.parsed(EnrollBody)
    done = await enroll_self(
        ctx.db, me, ctx.param("course_id"), body.invite_code, ctx.state.settings.courses
    )
    if done.invite_id is not None:
        ctx.audit_detail["invite_id"] = done.invite_id
    return json(enrollment_json(done.enrollment), status=201 if done.new_place else 200)


@routes.route("POST", "/courses/{course_id}/enroll-student", name="enrollments.enroll_student",
              body=StudentRef,
              summary="Put a student in a course directly (its teacher or an admin): active,"
              " or waitlisted when full. Skips approval, payment and invites; capacity and"
              " prerequisites still apply")
async def enroll_student(ctx: Ctx) -> Any:
    me = ctx.me
    body = ctx.parsed(StudentRef)
    course = await managed_course(ctx.db, me, ctx.param("course_id"), lock=True)
    done = await enroll_by_staff(ctx.db, course, body.student_id, me, ctx.state.settings.courses)
    return json(enrollment_json(done.enrollment), status=201 if done.new_place else 200)


@routes.route("POST", "/courses/{course_id}/remove-student", name="enrollments.remove_student",
              body=StudentRef,
              summary="Take a student out of a course (its teacher or an admin): the"
              " enrollment becomes removed and the seat goes to the waitlist")
async def remove_student(ctx: Ctx) -> Any:
    me = ctx.me
    body = ctx.parsed(StudentRef)
    course = await managed_course(ctx.db, me, ctx.param("course_id"), lock=True)
    enrollment = await find_enrollment(ctx.db, course.id, body.student_id)
    if enrollment is None:
        raise not_found("enrollment")
    await give_up_place(ctx.db, course, enrollment, Action.REMOVE, S.REMOVED, actor_id=me.id,
                        reason="removed by the teacher", settings=ctx.state.settings.courses)
    return json(enrollment_json(enrollment))


@routes.route("GET", "/courses/{course_id}/enrollments", name="enrollments.roster",
              query=StatusQuery, audit_read=True,
              summary="A course's roster (its teacher or an admin), optionally by ?status=;"
              " waitlisted students in queue order")
async def roster(ctx: Ctx) -> Any:
    q = ctx.parsed_query(StatusQuery)
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    stmt = (
        select(Enrollment, User)
        .join(User, User.id == Enrollment.student_id)
        .where(Enrollment.course_id == course.id)
    )
    if q.status is not None:
        stmt = stmt.where(Enrollment.status == q.status)
        ctx.audit_detail["status"] = q.status.value
    if q.status == S.WAITLISTED:
        stmt = stmt.order_by(Enrollment.queued_at, Enrollment.id)
    else:
        stmt = stmt.order_by(Enrollment.id)
    rows = (await ctx.db.execute(stmt)).all()
    results = [
        {
            **enrollment_json(e),
            "student": {"id": u.id, "username": u.username, "display_name": u.display_name},
        }
        for e, u in rows
    ]
    return json({"results": results})


@routes.route("GET", "/me/enrollments", name="enrollments.mine", query=StatusQuery,
              summary="Your own enrollments (students), optionally by ?status=")
async def my_enrollments(ctx: Ctx) -> Any:
    me = ctx.me
    if me.role != Role.STUDENT:
        raise forbidden("only students have enrollments")
    q = ctx.parsed_query(StatusQuery)
    stmt = (
        select(Enrollment, Course.title)
        .join(Course, Course.id == Enrollment.course_id)
        .where(Enrollment.student_id == me.id)
        .order_by(Enrollment.id)
    )
    if q.status is not None:
        stmt = stmt.where(Enrollment.status == q.status)
    rows = (await ctx.db.execute(stmt)).all()
    return json({"results": [{**enrollment_json(e), "course_title": t} for e, t in rows]})


@routes.route("GET", "/enrollments/{enrollment_id}", name="enrollments.get",
              summary="One enrollment (the student, the course's teacher, an admin)")
async def get(ctx: Ctx) -> Any:
    enrollment, course = await _load(ctx, lock=False)
    await _require_reader(ctx, course, enrollment)
    return json(enrollment_json(enrollment))


@routes.route("GET", "/enrollments/{enrollment_id}/history", name="enrollments.history",
              summary="Every status change of an enrollment, oldest first, with who and when"
              " (the student, the course's teacher, an admin)")
async def history(ctx: Ctx) -> Any:
    enrollment, course = await _load(ctx, lock=False)
    await _require_reader(ctx, course, enrollment)
    events = (
        await ctx.db.scalars(
            select(EnrollmentEvent)
            .where(EnrollmentEvent.enrollment_id == enrollment.id)
            .order_by(EnrollmentEvent.at, EnrollmentEvent.id)
        )
    ).all()
    return json({"enrollment_id": enrollment.id, "results": [event_json(e) for e in events]})


@routes.route("POST", "/enrollments/{enrollment_id}/approve", name="enrollments.approve",
              summary="Approve a request (the course's teacher or an admin): active, or"
              " waitlisted when the course is full")
async def approve(ctx: Ctx) -> Any:
    enrollment, course = await _load(ctx, lock=True)
    me = await _require_staff(ctx, course, enrollment)
    await approve_request(ctx.db, course, enrollment, me.id, ctx.state.settings.courses)
    return json(enrollment_json(enrollment))


@routes.route("POST", "/enrollments/{enrollment_id}/reject", name="enrollments.reject",
              summary="Reject a request (the course's teacher or an admin)")
async def reject(ctx: Ctx) -> Any:
    enrollment, course = await _load(ctx, lock=True)
    me = await _require_staff(ctx, course, enrollment)
    await move(ctx.db, enrollment, Action.REJECT, S.REJECTED, actor_id=me.id, reason="rejected")
    return json(enrollment_json(enrollment))


@routes.route("POST", "/enrollments/{enrollment_id}/complete", name="enrollments.complete",
              summary="Mark an active enrollment completed (the course's teacher or an"
              " admin); its seat goes to the waitlist")
async def complete(ctx: Ctx) -> Any:
    enrollment, course = await _load(ctx, lock=True)
    me = await _require_staff(ctx, course, enrollment)
    await give_up_place(ctx.db, course, enrollment, Action.COMPLETE, S.COMPLETED,
                        actor_id=me.id, reason="completed", settings=ctx.state.settings.courses)
    return json(enrollment_json(enrollment))


@routes.route("POST", "/enrollments/{enrollment_id}/withdraw", name="enrollments.withdraw",
              summary="Leave a course (the student themself): the enrollment becomes"
              " removed and the seat goes to the waitlist")
async def withdraw(ctx: Ctx) -> Any:
    enrollment, course = await _load(ctx, lock=True)
    me = ctx.me
    if me.id != enrollment.student_id:
        raise await _deny(
            ctx, course, enrollment,
            "only the student may withdraw; the teacher uses remove-student",
        )
    await give_up_place(ctx.db, course, enrollment, Action.WITHDRAW, S.REMOVED,
                        actor_id=me.id, reason="withdrew", settings=ctx.state.settings.courses)
    return json(enrollment_json(enrollment))
