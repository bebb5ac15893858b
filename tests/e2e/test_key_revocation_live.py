"""An encoder live on a stream key is cut off when the key stops working, end to end.

A whole node in-process (RTMP server, worker in passthrough mode, storage, API) and a
real ffmpeg publishing: revoking its key, rotating it, handing the course to another
teacher, deactivating and demoting the course's teacher each disconnect the encoder at
once, and publishing again with that key is refused. The class is not ended on the spot: like
after a dropped encoder it waits the reconnect grace period, so a teacher with a good
key (here, the rotated one) continues the same session; without one it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.live_stack import LiveStack, finished, publish_ffmpeg, stack_settings, wait_for
from support.rtmp_client import Client

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg: apt-get install ffmpeg"
)

ACTIONS = ["revoke", "rotate", "transfer", "deactivate", "demote"]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LiveStack]:
    # Passthrough: no ladder to encode, so the test costs little CPU.
    settings = stack_settings(tmp_path / "var", transcode_mode="passthrough",
                              reconnect_grace_seconds=4)
    async with LiveStack(settings) as live:
        yield live


async def publish_answer(stack: LiveStack, key: str) -> tuple[str, Client]:
    """What the RTMP server answers an encoder publishing with `key` (its onStatus code)."""
    client = await Client.open(stack.settings.streaming.rtmp_port)
    await client.handshake()
    await client.connect()
    stream_id = await client.create_stream(key)
    info = await client.publish(key, int(stream_id))
    code = info["code"]
    assert isinstance(code, str)
    return code, client


async def take_key_away(stack: LiveStack, action: str, course_id: int, key: str) -> str | None:
    """Do `action`; returns the rotated key for "rotate"."""
    keys = await stack.json("GET", f"/courses/{course_id}/stream-keys")
    (key_id,) = [k["id"] for k in keys["results"] if k["active"]]
    if action == "revoke":
        await stack.json("POST", f"/stream-keys/{key_id}/revoke")
    elif action == "rotate":
        rotated = await stack.json("POST", f"/stream-keys/{key_id}/rotate")
        return str(rotated["key"])
    elif action == "transfer":
        teacher = await stack.json("POST", "/users/", {
            "username": "next_teacher", "password": "teacher-password", "role": "teacher"},
            expect=201)
        await stack.json("PATCH", f"/courses/{course_id}/", {"teacher_id": teacher["id"]})
    else:
        teacher_id = (await stack.json("GET", f"/courses/{course_id}/"))["teacher"]["id"]
        if action == "deactivate":
            await stack.json("DELETE", f"/users/{teacher_id}/", expect=204)
        else:
            await stack.json("PATCH", f"/users/{teacher_id}/", {"role": "student"})
    return None


@pytest.mark.parametrize("action", ACTIONS)
async def test_the_encoder_is_cut_off_and_the_key_refused(stack: LiveStack, action: str) -> None:
    if action in ("deactivate", "demote"):
        # The demo course's teacher is the admin signed in here: use a teacher's course.
        course_id, key = await stack.add_course("Teacher's course")
    else:
        course_id, key = stack.course_id, stack.key
    publisher = await publish_ffmpeg(stack.rtmp_url_for(key), seconds=120, size="320x180",
                                     fps=10, gop_seconds=1)
    session_id = await stack.live_session_id(course_id=course_id)
    assert stack.node is not None
    assert stack.node.rtmp.registry.is_live(course_id)
    rotated = await take_key_away(stack, action, course_id, key)
    # Cut off at once (OBS would show its reconnect dialog).
    code, _ = await finished(publisher, within=15)
    assert code != 0
    answer, client = await publish_answer(stack, key)
    client.close()
    assert answer == "NetStream.Publish.BadName"
    status = await stack.live_status(course_id)
    if rotated is not None:
        # Within the grace period, the rotated key continues the same class.
        assert (status["is_live"], status["session_id"]) == (True, session_id)
        answer, client = await publish_answer(stack, rotated)
        try:
            assert answer == "NetStream.Publish.Start"
            assert (await stack.live_status(course_id))["session_id"] == session_id
        finally:
            client.close()
    else:
        async def ended() -> bool:
            return not (await stack.live_status(course_id))["is_live"]

        await wait_for(ended, within=20, what="the class to end after the grace period")
        assert (await stack.json("GET", f"/sessions/{session_id}/"))["status"] == "ended"


async def test_another_key_of_the_course_going_leaves_the_encoder_alone(
    stack: LiveStack,
) -> None:
    # E.g. the web page's "browser" key is rotated at each start while OBS publishes.
    other = await stack.json("POST", f"/courses/{stack.course_id}/stream-keys",
                             {"label": "browser"}, expect=201)
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=120, size="320x180", fps=10,
                                     gop_seconds=1)
    session_id = await stack.live_session_id()
    await stack.json("POST", f"/stream-keys/{other['id']}/rotate")
    await stack.json("POST", f"/stream-keys/{other['id']}/revoke")
    await asyncio.sleep(1)  # a disconnect, were there one, would have taken effect by now
    status = await stack.live_status()
    assert stack.node is not None and stack.node.rtmp.registry.is_live(stack.course_id)
    assert status["stream"]["publisher_connected"] and status["session_id"] == session_id
    assert publisher.returncode is None
    publisher.terminate()
    await finished(publisher, within=15)
