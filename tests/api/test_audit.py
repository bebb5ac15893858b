"""The audit log records every write and every roster read, and only admins read it."""

from __future__ import annotations

from support.api_client import Api
from support.world import World


async def test_writes_are_audited_with_who_and_what(api: Api, world: World) -> None:
    await api.patch(f"/courses/{world.course_id}/", world.teacher, json={"title": "New"},
                    expect=200)
    log = await api.get("/audit", world.admin, expect=200)
    newest = log["results"][0]
    assert newest["action"] == "courses.update"
    assert newest["actor_id"] == world.teacher.id
    assert newest["method"] == "PATCH"
    assert newest["detail"]["course_id"] == str(world.course_id)
    actions = [e["action"] for e in log["results"]]
    assert "courses.create" in actions and "categories.create" in actions


async def test_failed_writes_leave_no_audit_entry(api: Api, world: World) -> None:
    before = await api.get("/audit", world.admin, expect=200)
    await api.patch(f"/courses/{world.course_id}/", world.student, json={"title": "x"},
                    expect=403)
    after = await api.get("/audit", world.admin, expect=200)
    assert after["results"][0]["id"] == before["results"][0]["id"]


async def test_filters_and_admin_only(api: Api, world: World) -> None:
    only = await api.get(f"/audit?actor_id={world.admin.id}", world.admin, expect=200)
    assert {e["actor_id"] for e in only["results"]} == {world.admin.id}
    await api.get("/audit", world.teacher, expect=403)
    await api.get("/audit", world.student, expect=403)
    await api.get("/audit", expect=401)
