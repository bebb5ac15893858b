"""Recording progress on both databases: the player's reports are bounded, idempotent and
stored at most once per progress_write_seconds per person; the resume point; what counts
as watched (seeking ahead earns nothing); the per-recording report for staff; and the
course's completion per student from live attendance and recordings, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from control.api import attendance as attendance_api
from control.api import progress as progress_api
from support.api_client import Api, Person
from support.frozen_time import EPOCH, Clock, freeze
from support.recordings import end_with_recording, go_live, private_course, recorded_session
from support.world import World


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = freeze(monkeypatch)
    monkeypatch.setattr(progress_api, "utcnow", clock)
    monkeypatch.setattr(attendance_api, "utcnow", clock)
    return clock


async def put(api: Api, sid: int, who: Person, position: float, duration: float = 600,
              expect: int = 200) -> dict[str, object]:
    out: dict[str, object] = await api.put(
        f"/sessions/{sid}/progress", who, expect=expect,
        json={"position_seconds": position, "duration_seconds": duration})
    return out


async def test_reports_resume_and_are_rate_limited(
    api: Api, world: World, clock: Clock
) -> None:
    course = await private_course(api, world, world.student)
    sid = await recorded_session(api, world, course)
    before = await api.get(f"/sessions/{sid}/progress", world.student, expect=200)
    assert before["position_seconds"] == 0 and before["updated_at"] is None
    first = await put(api, sid, world.student, 30)
    assert first["saved"] is True and first["position_seconds"] == 30
    assert first["watched_seconds"] == 0  # where playback began, nothing watched yet
    # Within progress_write_seconds: answered with what is stored, not written.
    clock.advance(seconds=api.settings.courses.progress_write_seconds - 1)
    early = await put(api, sid, world.student, 39)
    assert early["saved"] is False and early["position_seconds"] == 30
    clock.advance(seconds=1)
    later = await put(api, sid, world.student, 40)
    assert later["saved"] is True and later["watched_seconds"] == 10
    # The same report again (after the limit) changes nothing: idempotent.
    clock.advance(seconds=30)
    again = await put(api, sid, world.student, 40)
    assert again["saved"] is True and again["watched_seconds"] == 10
    resume = await api.get(f"/sessions/{sid}/progress", world.student, expect=200)
    assert resume["position_seconds"] == 40 and resume["duration_seconds"] == 600
    assert resume["watched_share"] == round(10 / 600, 3)
    # Seeking far ahead moves the resume point but earns no watching.
    clock.advance(seconds=10)
    jumped = await put(api, sid, world.student, 500)
    assert jumped["position_seconds"] == 500 and jumped["watched_seconds"] == 10
    # Past the end is taken as the end; what is out of bounds is refused.
    clock.advance(seconds=10)
    end = await put(api, sid, world.student, 700)
    assert end["position_seconds"] == 600
    for body in ({"position_seconds": -1, "duration_seconds": 600},
                 {"position_seconds": 1, "duration_seconds": 0},
                 {"position_seconds": 1, "duration_seconds": 10**9},
                 {"position_seconds": 1}):
        out = await api.put(f"/sessions/{sid}/progress", world.student, json=body, expect=422)
        assert set(out) == {"error"}
    # The limit is per person: another student's reports are their own.
    await api.post(f"/courses/{course}/enroll-student", world.teacher,
                   json={"student_id": world.student2.id}, expect=201)
    assert (await put(api, sid, world.student2, 5))["saved"] is True


async def test_who_may_report_and_when(api: Api, world: World, clock: Clock) -> None:
    course = await private_course(api, world, world.student)
    sid = await go_live(api, world, course)
    out = await put(api, sid, world.student, 1, expect=409)  # live: no recording yet
    assert out["error"] == {"code": "not_available",
                            "message": f"session {sid} has no recording to watch"}
    await end_with_recording(api, world, course, sid)
    out = await put(api, sid, world.student3, 1, expect=403)
    assert out["error"]["code"] == "not_enrolled"  # type: ignore[index]
    await api.get(f"/sessions/{sid}/progress", world.student3, expect=403)
    await api.put(f"/sessions/{sid}/progress", json={"position_seconds": 1,
                                                     "duration_seconds": 2}, expect=401)
    await put(api, 999_999, world.student, 1, expect=404)


async def test_staff_see_who_watched_what_share(api: Api, world: World, clock: Clock) -> None:
    course = await private_course(api, world, world.student, world.student2)
    sid = await recorded_session(api, world, course)
    await put(api, sid, world.student, 0, duration=100)
    for position in (20, 40, 60, 80, 90):
        clock.advance(seconds=20)
        await put(api, sid, world.student, position, duration=100)
    # The teacher's page names students by their display name, where they have one.
    await api.patch(f"/users/{world.student.id}/", world.admin,
                    json={"display_name": "Ana Lima"}, expect=200)
    rows = await api.get(f"/sessions/{sid}/progress/report", world.teacher, expect=200)
    assert [(r["username"], r["display_name"], r["watched_share"]) for r in rows] == [
        ("student1", "Ana Lima", 0.9), ("student2", "", 0.0)]
    await api.get(f"/sessions/{sid}/progress/report", world.admin, expect=200)
    for who in (world.student, world.other_teacher):
        await api.get(f"/sessions/{sid}/progress/report", who, expect=403)


async def test_completion_from_attendance_and_recordings(
    api: Api, world: World, clock: Clock
) -> None:
    course = await private_course(api, world, world.student, world.student2, world.student3)
    # Class 1, live from EPOCH for ten minutes: student1 attends all of it.
    first = await go_live(api, world, course)
    for minute in range(0, 11):
        clock.now = EPOCH + timedelta(minutes=minute)
        await api.post(f"/sessions/{first}/heartbeat", world.student, expect=204)
    await end_with_recording(api, world, course, first)
    # Class 2: nobody attends live; student1 and student2 watch its recording, student2
    # only half of it.
    clock.now = EPOCH + timedelta(hours=1)
    second = await go_live(api, world, course)
    clock.now = EPOCH + timedelta(hours=1, minutes=10)
    await end_with_recording(api, world, course, second)
    for who, until in ((world.student, 100), (world.student2, 50)):
        clock.advance(hours=1)
        await put(api, second, who, 0, duration=100)
        for position in range(25, until + 1, 25):
            clock.advance(seconds=25)
            await put(api, second, who, position, duration=100)
    # student2 also watched all of class 1's recording.
    clock.advance(hours=1)
    await put(api, first, world.student2, 0, duration=100)
    for position in range(25, 101, 25):
        clock.advance(seconds=25)
        await put(api, first, world.student2, position, duration=100)

    rows = await api.get(f"/courses/{course}/completion", world.teacher, expect=200)
    summary = {r["username"]: (r["done"], r["sessions_total"], r["completion_percent"])
               for r in rows}
    assert {r["display_name"] for r in rows} == {""}
    assert summary == {"student1": (2, 2, 100.0), "student2": (1, 2, 50.0),
                       "student3": (0, 2, 0.0)}
    student2 = next(r for r in rows if r["username"] == "student2")
    assert student2["sessions"] == [
        {"session_id": first, "attended": False, "watched_share": 1.0, "done": True},
        {"session_id": second, "attended": False, "watched_share": 0.5, "done": False},
    ]
    text = await api.get(f"/courses/{course}/completion?format=csv", world.admin, expect=200)
    assert list(csv.reader(io.StringIO(text))) == [
        ["user_id", "username", "sessions", "attended_live", "watched_recording", "done",
         "completion_percent"],
        [str(world.student.id), "student1", "2", "1", "1", "2", "100.0"],
        [str(world.student2.id), "student2", "2", "0", "1", "1", "50.0"],
        [str(world.student3.id), "student3", "2", "0", "0", "0", "0.0"],
    ]
    for who in (world.student, world.other_teacher):
        await api.get(f"/courses/{course}/completion", who, expect=403)
    await api.get(f"/courses/{course}/completion?format=xml", world.teacher, expect=422)
