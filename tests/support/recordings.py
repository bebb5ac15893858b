"""Recorded sessions for API tests: a class goes live, ends, and its recording is ready
(told by the media edge's in-process control port, as the media server does)."""

from __future__ import annotations

from mediaserver.control_inprocess import InProcessControl
from support.api_client import Api, Person
from support.world import World


async def private_course(api: Api, world: World, *students: Person, **fields: object) -> int:
    """A private course of world.teacher with `students` put in by the teacher."""
    course = await api.post("/courses/", world.teacher, expect=201, json={
        "title": "Topology", "category_id": world.category_id, "access_level": "private",
        **fields,
    })
    for student in students:
        await api.post(f"/courses/{course['id']}/enroll-student", world.teacher,
                       json={"student_id": student.id}, expect=201)
    return int(course["id"])


async def go_live(api: Api, world: World, course_id: int) -> int:
    started = await api.post(f"/courses/{course_id}/start-live", world.teacher, expect=200)
    return int(started["session_id"])


async def end_with_recording(api: Api, world: World, course_id: int, session_id: int) -> None:
    await api.post(f"/courses/{course_id}/end-live", world.teacher, expect=200)
    await InProcessControl(api.database, api.settings).recording_ready(session_id)


async def recorded_session(api: Api, world: World, course_id: int) -> int:
    """A class of the course that went live, ended and has its recording."""
    session_id = await go_live(api, world, course_id)
    await end_with_recording(api, world, course_id, session_id)
    return session_id
