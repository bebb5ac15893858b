"""Media URLs are the server's alone: no one sets a session's `recording_url` by hand.

The server sets it when a recording is finalised and stored; a teacher (or an admin)
writing one would point students, through the API and the recording download, at
whatever they like. The session bodies have no such field, so OpenAPI does not offer it
and a body naming it is refused like any unknown field.
"""

from __future__ import annotations

from datetime import timedelta

from control.models.base import utcnow
from support.api_client import Api
from support.snapshot import snapshot
from support.world import World


async def test_recording_url_cannot_be_written(api: Api, world: World) -> None:
    start = utcnow() + timedelta(days=2)
    times = {"start_time": start.isoformat(),
             "end_time": (start + timedelta(hours=1)).isoformat()}
    made = await api.post("/sessions/", world.teacher, expect=201,
                          json={"course_id": world.course_id, "title": "Class", **times})
    path = f"/sessions/{made['id']}/"
    before = await snapshot(api.database)
    for who in (world.teacher, world.admin):
        reply = await api.patch(path, who, json={"recording_url": "https://evil.example/x"},
                                expect=422)
        assert "recording_url" in reply["error"]["message"]
        reply = await api.put(path, who, expect=422, json={
            "title": "Class", **times, "recording_url": "https://evil.example/x"})
        assert "recording_url" in reply["error"]["message"]
    assert await snapshot(api.database) == before
    session = await api.get(path, world.teacher, expect=200)
    assert session["recording_url"] == ""


async def test_openapi_offers_no_recording_url_to_write(api: Api) -> None:
    document = await api.get("/openapi.json", expect=200)
    schemas = document["components"]["schemas"]
    for name in ("SessionPatch", "SessionReplace", "SessionCreate"):
        assert "recording_url" not in schemas[name]["properties"], name
        assert schemas[name].get("additionalProperties") is False, name
