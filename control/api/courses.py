"""Courses: the catalog (filtered by who asks), and CRUD for their teachers and admins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field
from sqlalchemy import ScalarSelect, Select, func, select

from control.api.course_json import course_json, orm_row
from control.api.course_list_json import RenderedItems, cursor_value, page_body
from control.api.course_list_query import Shape, cursor_time, list_statements, search_pattern
from control.api.live_notice import notify_keys_revoked
from control.courses.editing import change_course, create_course
from control.courses.permissions import managed_course, visible_course
from control.courses.prerequisites import prerequisite_map
from control.errors import bad_request
from control.http.bodies import INT_MAX, Body, Id, Query
from control.http.cursor import decode_cursor, next_link
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import (
    AccessLevel,
    Category,
    ChatMode,
    Course,
    Enrollment,
    EnrollmentStatus,
    Role,
    User,
)

routes = Routes("courses")

SortKey = Literal["title", "-title", "created_at", "-created_at", "id", "-id"]


class CourseFields(Body):
    description: str = Field(default="", max_length=50_000)
    access_level: AccessLevel = AccessLevel.PUBLIC
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    price_cents: int | None = Field(default=None, ge=1, le=INT_MAX)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    prerequisite_ids: list[Id] = Field(default_factory=list, max_length=50)
    chat_mode: ChatMode = ChatMode.PUBLIC
    vod_channel_id: str = Field(default="", max_length=100)
    is_active: bool = True
    teacher_id: Id | None = None
    # A term for enrolled students (either end may be open), and recordings in order.
    access_opens_at: AwareDatetime | None = None
    access_closes_at: AwareDatetime | None = None
    sequential_release: float | None = Field(default=None, gt=0, le=1)


class CourseCreate(CourseFields):
    title: str = Field(min_length=1, max_length=200)
    category_id: Id


class CoursePatch(Body):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    category_id: Id | None = None
    description: str | None = Field(default=None, max_length=50_000)
    access_level: AccessLevel | None = None
    capacity: int | None = Field(default=None, ge=1, le=1_000_000)
    price_cents: int | None = Field(default=None, ge=1, le=INT_MAX)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    prerequisite_ids: list[Id] | None = Field(default=None, max_length=50)
    chat_mode: ChatMode | None = None
    vod_channel_id: str | None = Field(default=None, max_length=100)
    is_active: bool | None = None
    teacher_id: Id | None = None
    access_opens_at: AwareDatetime | None = None
    access_closes_at: AwareDatetime | None = None
    sequential_release: float | None = Field(default=None, gt=0, le=1)


class CourseListQuery(Query):
    category_id: Id | None = None
    q: str | None = Field(default=None, max_length=200)
    access_level: AccessLevel | None = None
    is_live: bool | None = None
    teacher_id: Id | None = None
    sort: SortKey = "title"
    cursor: str | None = None
    limit: int = Field(default=20, ge=1, le=100)


def enrolled_count() -> ScalarSelect[int]:
    """Active enrollments of the course in the outer query, as a correlated subquery."""
    return (
        select(func.count(Enrollment.id))
        .where(Enrollment.course_id == Course.id, Enrollment.status == EnrollmentStatus.ACTIVE)
        .correlate(Course)
        .scalar_subquery()
    )


def course_with_names() -> Select[Course, str, str, str, int]:
    """A course with its teacher's username and display name, its category's name and its
    enrolled count (what its JSON shows of other rows), in one query."""
    return (
        select(Course, User.username, User.display_name, Category.name, enrolled_count())
        .join(User, User.id == Course.teacher_id)
        .join(Category, Category.id == Course.category_id)
    )


async def render_course(ctx: Ctx, course: Course) -> dict[str, Any]:
    row = (await ctx.db.execute(course_with_names().where(Course.id == course.id))).one()
    _, username, display_name, category_name, enrolled = row
    prerequisites = (await prerequisite_map(ctx.db, [course.id])).get(course.id, [])
    return course_json(
        orm_row(course, username, display_name, category_name, enrolled, prerequisites),
        ctx.state.settings.public_url,
    )


def _list_values(ctx: Ctx, q: CourseListQuery) -> tuple[Shape, dict[str, Any]]:
    """The statement's shape and the values of its parameters for this request."""
    user = ctx.user
    values: dict[str, Any] = {"arg_limit": q.limit + 1}
    if user is not None:
        values["arg_viewer_id"] = user.id
    if q.category_id is not None:
        values["arg_category_id"] = q.category_id
    if q.access_level is not None:
        values["arg_access_level"] = q.access_level.value
    if q.is_live is not None:
        values["arg_is_live"] = q.is_live
    if q.teacher_id is not None:
        values["arg_teacher_id"] = q.teacher_id
    if q.q:
        values["arg_q"] = search_pattern(q.q.strip())
    if q.cursor:
        value, row_id = decode_cursor(q.cursor, q.sort)
        field = q.sort.lstrip("-")
        if field == "created_at":
            value = cursor_time(value)
            if value is not None and value.tzinfo is None:
                value = None
        elif not isinstance(value, int if field == "id" else str) or isinstance(value, bool):
            value = None
        if value is None:
            raise bad_request("the cursor is not one this server gave", "bad_cursor")
        values["arg_cursor_value"] = value
        values["arg_cursor_id"] = row_id
    shape = Shape(
        viewer=None if user is None else user.role,
        category=q.category_id is not None,
        access_level=q.access_level is not None,
        is_live=q.is_live is not None,
        teacher=q.teacher_id is not None,
        search=bool(q.q),
        sort=q.sort,
        cursor=bool(q.cursor),
    )
    return shape, values


_rendered = RenderedItems()


async def _list_rows(ctx: Ctx, shape: Shape, values: dict[str, Any]) -> Sequence[Sequence[Any]]:
    database = ctx.state.database
    compiled = list_statements(database.engine.dialect).get(shape)
    parameters = compiled.parameters(values)
    reader = database.plain_reads
    if reader is not None:
        return await reader.fetch(compiled.sql, parameters)
    # No plain reader (in-memory SQLite): the same SQL through the session, rows untouched.
    conn = await ctx.db.connection()
    return (await conn.exec_driver_sql(compiled.sql, tuple(parameters))).all()


@routes.route("GET", "/courses/", name="courses.list", query=CourseListQuery, public=True,
              summary="List courses: students and visitors see the catalog, teachers their"
              " own, admins all")
async def list_courses(ctx: Ctx) -> Any:
    # One precompiled query, run on the driver (see course_list_query, plain_reads): the
    # catalog is the hottest read of the API.
    q = ctx.parsed_query(CourseListQuery)
    shape, values = _list_values(ctx, q)
    rows = await _list_rows(ctx, shape, values)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    public_url = ctx.state.settings.public_url
    items = [_rendered.text(row, public_url) for row in rows]
    next_url = None
    if more:
        last = rows[-1]
        next_url = next_link(ctx.request, q.sort, cursor_value(last, q.sort.lstrip("-")), last[0])
    return web.Response(text=page_body(items, next_url), content_type="application/json")


@routes.route("POST", "/courses/", name="courses.create", body=CourseCreate,
              summary="Create a course (teachers for themselves; admins name the teacher)")
async def create(ctx: Ctx) -> Any:
    me = ctx.require_role(Role.TEACHER, Role.ADMIN)
    fields = ctx.parsed(CourseCreate).model_dump()
    course = await create_course(ctx.db, me, fields, ctx.state.settings)
    return json(await render_course(ctx, course), status=201)


@routes.route("GET", "/courses/{course_id}/", name="courses.get", public=True,
              summary="One course")
async def get(ctx: Ctx) -> Any:
    course = await visible_course(ctx.db, ctx.user, ctx.param("course_id"))
    return json(await render_course(ctx, course))


async def _update(ctx: Ctx, values: dict[str, Any]) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    revoked = await change_course(ctx.db, course, ctx.me, values, ctx.state.settings)
    notify_keys_revoked(ctx, revoked)
    return json(await render_course(ctx, course))


@routes.route("PUT", "/courses/{course_id}/", name="courses.replace", body=CourseCreate,
              summary="Replace a course's fields (its teacher or an admin)")
async def replace(ctx: Ctx) -> Any:
    return await _update(ctx, ctx.parsed(CourseCreate).model_dump())


@routes.route("PATCH", "/courses/{course_id}/", name="courses.update", body=CoursePatch,
              summary="Change some fields of a course (its teacher or an admin)")
async def update(ctx: Ctx) -> Any:
    return await _update(ctx, ctx.parsed(CoursePatch).model_dump(exclude_unset=True))


@routes.route("DELETE", "/courses/{course_id}/", name="courses.delete",
              summary="Archive a course (its teacher or an admin): it leaves the catalog;"
              " sessions, recordings and enrollments are kept")
async def archive(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    course.is_active = False
    return no_content()
