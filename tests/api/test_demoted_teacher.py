"""A teacher demoted to student loses every power over the courses they still own.

The course keeps `teacher_id` until an admin hands it on, so ownership alone must not
grant anything: every endpoint the course's teacher may call (the permission matrix's
table) is refused to its demoted owner, and changes nothing.
"""

from __future__ import annotations

import pytest

from control.app import all_endpoints
from support.api_client import Api
from support.permission_table import ALLOWED, build_scene, valid_body
from support.snapshot import snapshot
from support.world import World

# What the course's own teacher may do and an ordinary student may not.
TEACHER_POWERS = sorted(
    name for name, allowed in ALLOWED.items() if "teacher" in allowed and "outsider" not in allowed
)


def test_the_powers_are_the_teachers() -> None:
    assert {"enrollments.roster", "stream_keys.create", "live.start", "live.end"} <= set(
        TEACHER_POWERS
    )


@pytest.mark.parametrize("name", TEACHER_POWERS)
async def test_a_demoted_owner_is_refused(api: Api, world: World, name: str) -> None:
    scene = await build_scene(api, world)
    await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"role": "student"},
                    expect=200)
    endpoint = next(e for e in all_endpoints() if e.name == name)
    path = endpoint.path.format(**scene.ids)
    before = await snapshot(api.database)
    out = await api.call(endpoint.method, path, world.teacher, json=valid_body(name, scene))
    assert api.last_status in (403, 404), (name, api.last_status, out)
    assert set(out) == {"error"}
    assert await snapshot(api.database) == before, f"{name} as a demoted owner changed something"


async def test_promoted_again_the_owner_has_the_course_back(api: Api, world: World) -> None:
    c = world.course_id
    await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"role": "student"},
                    expect=200)
    await api.get(f"/courses/{c}/enrollments", world.teacher, expect=403)
    await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"role": "teacher"},
                    expect=200)
    await api.get(f"/courses/{c}/enrollments", world.teacher, expect=200)
    await api.post(f"/courses/{c}/start-live", world.teacher, expect=200)
    await api.post(f"/courses/{c}/end-live", world.teacher, expect=200)


async def test_a_demoted_owner_no_longer_sees_what_only_staff_see(
    api: Api, world: World
) -> None:
    scene = await build_scene(api, world)
    session_id, schedule_id = scene.ids["session_id"], scene.ids["schedule_id"]
    await api.patch(f"/sessions/{session_id}/", world.teacher, json={"is_active": False},
                    expect=200)
    await api.patch(f"/schedules/{schedule_id}/", world.teacher, json={"is_active": False},
                    expect=200)

    async def listed() -> tuple[bool, bool]:
        sessions = await api.get("/sessions/", world.teacher, expect=200)
        schedules = await api.get("/schedules/", world.teacher, expect=200)
        return (session_id in [s["id"] for s in sessions["results"]],
                schedule_id in [s["id"] for s in schedules["results"]])

    assert await listed() == (True, True)
    await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"role": "student"},
                    expect=200)
    assert await listed() == (False, False)
