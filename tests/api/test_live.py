"""Going live and ending live: the functions the media server calls, and their endpoints."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control.errors import ApiError
from control.models import Course, CourseSession, SessionStatus
from control.sessions.live import end_live, go_live
from support.api_client import Api, Person
from support.frozen_time import EPOCH, Clock, freeze, iso
from support.snapshot import snapshot
from support.world import World

START = EPOCH + timedelta(days=7)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return freeze(monkeypatch)


async def make_session(api: Api, who: Person, course_id: int, start: Any = START,
                       minutes: int = 60) -> Any:
    return await api.post(
        "/sessions/", who, expect=201,
        json={"course_id": course_id, "title": "Lecture", "start_time": iso(start),
              "end_time": iso(start + timedelta(minutes=minutes))},
    )


async def sessions(api: Api) -> list[CourseSession]:
    async with api.database.transaction(write=False) as db:
        return list((await db.scalars(select(CourseSession).order_by(CourseSession.id))).all())


# --- the functions -------------------------------------------------------------------------


async def test_go_live_picks_the_session_in_its_window(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    settings = api.settings.courses
    # 15 minutes early is allowed (early_start_minutes).
    now = START - timedelta(minutes=settings.early_start_minutes)
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, world.course_id)
        assert course is not None
        session = await go_live(db, course, now=now, settings=settings)
        assert session.id == made["id"]
        assert session.status == SessionStatus.LIVE
        assert session.started_at == now
        assert course.is_live is True
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, world.course_id)
        assert course is not None
        ended = await end_live(db, course, now=now + timedelta(minutes=70))
        assert ended is not None and ended.id == made["id"]
        assert ended.status == SessionStatus.ENDED
        assert ended.ended_at == now + timedelta(minutes=70)
        assert course.is_live is False
        assert await end_live(db, course, now=now) is None


async def test_go_live_outside_any_window_creates_an_ad_hoc_session(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    settings = api.settings.courses
    too_early = START - timedelta(minutes=settings.early_start_minutes + 1)
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, world.course_id)
        assert course is not None
        session = await go_live(db, course, now=too_early, settings=settings)
    assert session.id != made["id"]
    assert session.title == "Algebra (live)"
    assert session.schedule_id is None
    assert session.start_time == too_early
    assert session.end_time == too_early + timedelta(minutes=settings.session_duration_limit)
    assert session.status == SessionStatus.LIVE and session.started_at == too_early
    by_id = {s.id: s for s in await sessions(api)}
    assert by_id[made["id"]].status == SessionStatus.SCHEDULED


async def test_go_live_after_a_session_ended_is_ad_hoc(
    api: Api, world: World, clock: Clock
) -> None:
    await make_session(api, world.teacher, world.course_id)
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, world.course_id)
        assert course is not None
        late = await go_live(db, course, now=START + timedelta(minutes=60),
                             settings=api.settings.courses)
    assert late.title == "Algebra (live)"


async def test_go_live_twice_is_already_live(api: Api, world: World, clock: Clock) -> None:
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, world.course_id)
        assert course is not None
        await go_live(db, course, now=EPOCH, settings=api.settings.courses)
    with pytest.raises(ApiError) as caught:
        async with api.database.transaction(write=True) as db:
            course = await db.get(Course, world.course_id)
            assert course is not None
            await go_live(db, course, now=EPOCH, settings=api.settings.courses)
    assert (caught.value.status, caught.value.code) == (409, "already_live")
    assert len(await sessions(api)) == 1


async def test_database_allows_one_live_session_per_course(
    api: Api, world: World, clock: Clock
) -> None:
    with pytest.raises(IntegrityError):
        async with api.database.transaction(write=True) as db:
            for _ in range(2):
                db.add(CourseSession(course_id=world.course_id, title="x", start_time=EPOCH,
                                     end_time=EPOCH + timedelta(hours=1),
                                     status=SessionStatus.LIVE))
            await db.flush()


# --- the endpoints -------------------------------------------------------------------------


async def test_start_status_end_over_http(api: Api, world: World, clock: Clock) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    status_path = f"/courses/{world.course_id}/live-status"
    idle = await api.get(status_path, world.student, expect=200)
    assert idle["is_live"] is False and idle["session_id"] is None and idle["since"] is None
    assert idle["next_session"]["id"] == made["id"]
    clock.now = START - timedelta(minutes=5)
    started = await api.post(f"/courses/{world.course_id}/start-live", world.teacher,
                             expect=200)
    assert started["is_live"] is True and started["session_id"] == made["id"]
    assert started["since"] == iso(clock.now)
    status = await api.get(status_path, None, expect=200)  # visitors see public courses
    assert status["is_live"] is True
    assert status["session_id"] == made["id"]
    assert status["since"] == iso(clock.now)
    assert status["session"]["status"] == "live"
    course = await api.get(f"/courses/{world.course_id}/", world.student, expect=200)
    assert course["is_live"] is True
    reply = await api.post(f"/courses/{world.course_id}/start-live", world.admin, expect=409)
    assert reply["error"]["code"] == "already_live"
    clock.advance(minutes=65)
    ended = await api.post(f"/courses/{world.course_id}/end-live", world.teacher, expect=200)
    assert ended["is_live"] is False
    assert ended["ended_session"]["id"] == made["id"]
    assert ended["ended_session"]["status"] == "ended"
    assert ended["ended_session"]["ended_at"] == iso(clock.now)
    after = await api.get(status_path, world.student, expect=200)
    assert after["is_live"] is False and after["session"] is None
    reply = await api.post(f"/courses/{world.course_id}/end-live", world.teacher, expect=409)
    assert reply["error"]["code"] == "not_live"


async def test_admin_may_start_and_end(api: Api, world: World, clock: Clock) -> None:
    started = await api.post(f"/courses/{world.course_id}/start-live", world.admin,
                             expect=200)
    assert started["session"]["title"] == "Algebra (live)"
    await api.post(f"/courses/{world.course_id}/end-live", world.admin, expect=200)


async def test_forbidden_live_calls_change_nothing(api: Api, world: World, clock: Clock) -> None:
    await make_session(api, world.teacher, world.course_id)
    before = await snapshot(api.database)
    for who in (world.student, world.other_teacher):
        await api.post(f"/courses/{world.course_id}/start-live", who, expect=403)
        await api.post(f"/courses/{world.course_id}/end-live", who, expect=403)
    await api.post(f"/courses/{world.course_id}/start-live", None, expect=401)
    await api.post(f"/courses/{world.course_id}/end-live", None, expect=401)
    assert await snapshot(api.database) == before
    # And once live, outsiders cannot end it.
    await api.post(f"/courses/{world.course_id}/start-live", world.teacher, expect=200)
    before = await snapshot(api.database)
    for who in (world.student, world.other_teacher):
        await api.post(f"/courses/{world.course_id}/end-live", who, expect=403)
    assert await snapshot(api.database) == before


async def test_invisible_course_is_404(api: Api, world: World, clock: Clock) -> None:
    hidden = await api.post(
        "/courses/", world.teacher, expect=201,
        json={"title": "Secret", "category_id": world.category_id, "capacity": 5,
              "access_level": "restricted"},
    )
    before = await snapshot(api.database)
    for path in ("start-live", "end-live"):
        await api.post(f"/courses/{hidden['id']}/{path}", world.student, expect=404)
    await api.get(f"/courses/{hidden['id']}/live-status", world.student, expect=404)
    await api.get(f"/courses/{hidden['id']}/live-status", None, expect=404)
    assert await snapshot(api.database) == before
    await api.get(f"/courses/{hidden['id']}/live-status", world.teacher, expect=200)
    await api.get(f"/courses/{hidden['id']}/live-status", world.other_teacher, expect=404)


async def test_concurrent_start_live_makes_one_live_session(
    api: Api, world: World, clock: Clock
) -> None:
    path = f"/courses/{world.course_id}/start-live"
    replies = await asyncio.gather(
        *(api.call("POST", path, who) for who in (world.teacher, world.admin, world.teacher))
    )
    live = [r for r in replies if "is_live" in r]
    refused = [r["error"]["code"] for r in replies if "error" in r]
    assert len(live) == 1 and refused == ["already_live", "already_live"]
    assert [s.status for s in await sessions(api)] == [SessionStatus.LIVE]
