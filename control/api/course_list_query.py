"""The course list's SQL, built and compiled once per filter shape and database dialect.

Building, caching and compiling a SELECT through the ORM cost more than the query itself
(cache keys, compile state, entity rows). The list's statement depends only on its shape
(the viewer's role, which filters are given, the sort, whether a cursor is given), so
each shape is built once, compiled once per dialect to SQL text with its parameters in
order, and every request only supplies values. Rows come back as plain tuples; the
prerequisites come in the same row, as one aggregated string.

Visibility stays in `control.courses.permissions.visibility_filter`: it is called with a
stand-in viewer whose id is a bound parameter, so the rule is written once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    String,
    bindparam,
    func,
    select,
    tuple_,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler

from control.api.course_json import CourseRow
from control.courses.permissions import visibility_filter
from control.models import (
    Category,
    Course,
    Enrollment,
    EnrollmentStatus,
    Role,
    User,
    course_prerequisites,
)
from control.models.base import UTCDateTime

courses = cast(Any, Course.__table__).c
users = cast(Any, User.__table__).c
categories = cast(Any, Category.__table__).c
enrollments = cast(Any, Enrollment.__table__).c
prerequisites = course_prerequisites.c

SORT_COLUMNS = {"title": courses.title, "created_at": courses.created_at, "id": courses.id}

# Column order of every row the list query returns: a course's JSON is made from it.
COLUMNS = CourseRow._fields


class Shape(NamedTuple):
    """What decides the statement's text (never the values)."""

    viewer: Role | None  # None: signed out
    category: bool
    access_level: bool
    is_live: bool
    teacher: bool
    search: bool
    sort: str
    cursor: bool


@dataclass(frozen=True)
class CompiledList:
    """SQL text for one dialect and how to turn named values into its parameters."""

    sql: str
    # One entry per placeholder, in order: a name looked up in the request's values
    # (None for a constant of the statement) and the constant or the type's processor.
    slots: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for name, constant, process in self.slots:
            value = constant if name is None else values[name]
            out.append(process(value) if process is not None else value)
        return out


def _arg(name: str, type_: Any) -> Any:
    # No value here: each request supplies it (see CompiledList.parameters).
    return bindparam(name, None, type_=type_, required=False)


def _stand_in(role: Role) -> User:
    # A transient user only visibility_filter reads: its id is the statement's parameter.
    viewer = User(role=role)
    viewer.id = cast(int, _arg("arg_viewer_id", Integer))
    return viewer


def _enrolled_count() -> ColumnElement[int]:
    return (
        select(func.count(enrollments.id))
        .where(
            enrollments.course_id == courses.id,
            enrollments.status == EnrollmentStatus.ACTIVE.value,
        )
        .correlate(Course.__table__)
        .scalar_subquery()
    )


def _prerequisite_ids() -> ColumnElement[str]:
    # One string per course ("3,1"): sorted by the reader, since string aggregation
    # does not promise an order on every database.
    return (
        select(func.aggregate_strings(sql_cast(prerequisites.prerequisite_id, String), ","))
        .where(prerequisites.course_id == courses.id)
        .correlate(Course.__table__)
        .scalar_subquery()
    )


def build(shape: Shape) -> Select[Any]:
    """The statement for one shape, with named parameters `arg_*`."""
    stmt = (
        select(  # in COLUMNS order
            courses.id, courses.title, courses.description, courses.teacher_id,
            courses.category_id,
            courses.access_level, courses.capacity, courses.price_cents, courses.currency,
            courses.chat_mode, courses.vod_channel_id, courses.is_live, courses.is_active,
            courses.created_at, courses.updated_at,
            users.username, users.display_name, categories.name,
            _enrolled_count(), _prerequisite_ids(),
            courses.access_opens_at, courses.access_closes_at, courses.sequential_release,
        )
        .join_from(Course.__table__, User.__table__, users.id == courses.teacher_id)
        .join(Category.__table__, categories.id == courses.category_id)
    )
    # course_json unpacks the row by position: a column added here goes into CourseRow too.
    assert len(stmt.selected_columns) == len(COLUMNS)
    if shape.viewer is None:
        visible = visibility_filter(None)
    else:
        visible = visibility_filter(_stand_in(shape.viewer))
    if visible is not None:
        stmt = stmt.where(visible)
    if shape.category:
        stmt = stmt.where(courses.category_id == _arg("arg_category_id", Integer))
    if shape.access_level:
        stmt = stmt.where(courses.access_level == _arg("arg_access_level", String))
    if shape.is_live:
        stmt = stmt.where(courses.is_live == _arg("arg_is_live", Boolean))
    if shape.teacher:
        stmt = stmt.where(courses.teacher_id == _arg("arg_teacher_id", Integer))
    if shape.search:
        # The value arrives escaped with "/" (see `search_pattern`).
        text = _arg("arg_q", String)
        stmt = stmt.where(
            courses.title.icontains(text, escape="/")
            | courses.description.icontains(text, escape="/")
        )
    field = shape.sort.lstrip("-")
    column = SORT_COLUMNS[field]
    descending = shape.sort.startswith("-")
    if shape.cursor:
        value_type = UTCDateTime() if field == "created_at" else column.type
        key = tuple_(column, courses.id)
        after = tuple_(
            _arg("arg_cursor_value", value_type),
            _arg("arg_cursor_id", Integer),
        )
        stmt = stmt.where(key < after if descending else key > after)
    order = [column.desc(), courses.id.desc()] if descending else [column, courses.id]
    return stmt.order_by(*order).limit(_arg("arg_limit", Integer))


def search_pattern(text: str) -> str:
    """The search text with LIKE's wildcards escaped, for `arg_q`."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def compile_for(stmt: Select[Any], dialect: Dialect) -> CompiledList:
    # render_postcompile spells out IN lists, so the SQL text is final.
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    defaults = compiled.construct_params()
    slots: list[tuple[str | None, Any, Callable[[Any], Any] | None]] = []
    for name in compiled.positiontup or ():
        bind = compiled.binds.get(name)  # IN lists' items are not in `binds`
        process = None
        if bind is not None:
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if name.startswith("arg_"):
            slots.append((name, None, process))
            continue
        value = defaults[name]
        if process is not None:
            value = process(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        slots.append((None, value, None))
    return CompiledList(compiled.string, tuple(slots))


class ListStatements:
    """Compiled statements by shape, for one dialect (a process's database)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[Shape, CompiledList] = {}

    def get(self, shape: Shape) -> CompiledList:
        found = self._compiled.get(shape)
        if found is None:
            found = self._compiled[shape] = compile_for(build(shape), self.dialect)
        return found


_by_dialect: dict[tuple[str, str], ListStatements] = {}


def list_statements(dialect: Dialect) -> ListStatements:
    """The process's statements for this kind of database."""
    key = (dialect.name, dialect.driver)
    found = _by_dialect.get(key)
    if found is None:
        found = _by_dialect[key] = ListStatements(dialect)
    return found


def cursor_time(value: Any) -> datetime | None:
    """A created_at cursor value back to an aware datetime, or None if it is not one."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
