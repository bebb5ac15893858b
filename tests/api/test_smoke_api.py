"""First contact with the API: sign in, create a course, see it listed."""

from __future__ import annotations

from support.api_client import Api
from support.world import World


async def test_login_and_course_list(api: Api, world: World) -> None:
    login = await api.post(
        "/auth/login", json={"username": "student1", "password": world.student.password},
        expect=200,
    )
    assert login["user"]["role"] == "student"
    headers = {"Authorization": f"Bearer {login['token']}"}
    listed = await api.get("/courses/", headers=headers, expect=200)
    assert [c["title"] for c in listed["results"]] == ["Algebra"]
    assert listed["next"] is None
