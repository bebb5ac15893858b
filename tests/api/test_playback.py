"""Playback: who gets a signed URL for a session (both databases), what kind of URL, the
recording redirect, and how the media edge's check of a token (InProcessControl) refuses
tampered, expired, misplaced and outdated tokens. Also the signing key's file."""

from __future__ import annotations

import dataclasses
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from config.settings import Settings
from control.models import AuditEntry
from control.streaming.playback_tokens import (
    KEY_FILE_NAME,
    PlaybackSigner,
    PlaybackTokenError,
    signing_key,
)
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import PlaybackAllowed, PlaybackRefused
from support.api_client import Api, Person
from support.world import World

# --- tokens and the key, without a database ------------------------------------------------

NOW = datetime(2031, 1, 6, 12, 0, tzinfo=UTC)


def test_tokens_are_short_path_safe_and_say_what_they_grant() -> None:
    signer = PlaybackSigner(b"k" * 32)
    later = NOW + timedelta(hours=1)
    for user in (7, None, 2**40):
        token = signer.issue(12345, user, later)
        assert len(token) < 120
        assert "/" not in token and "=" not in token and "+" not in token
        claim = signer.verify(token, session_id=12345, now=NOW)
        assert (claim.session_id, claim.user_id, claim.expires_at) == (12345, user, later)


@pytest.mark.parametrize("damage", ["flip", "cut", "foreign", "empty", "long", "other_key"])
def test_damaged_tokens_are_bad(damage: str) -> None:
    signer = PlaybackSigner(b"k" * 32)
    token = signer.issue(1, 2, NOW + timedelta(hours=1))
    middle = len(token) // 2
    damaged = {
        "flip": token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:],
        "cut": token[:-2],
        "foreign": token[:middle] + "/" + token[middle + 1:],
        "empty": "",
        "long": token * 3,
        "other_key": PlaybackSigner(b"x" * 32).issue(1, 2, NOW + timedelta(hours=1)),
    }[damage]
    with pytest.raises(PlaybackTokenError) as caught:
        signer.verify(damaged, session_id=1, now=NOW)
    assert caught.value.reason == "bad_token"


def test_expired_and_wrong_session() -> None:
    signer = PlaybackSigner(b"k" * 32)
    token = signer.issue(1, 2, NOW + timedelta(seconds=30))
    assert signer.verify(token, session_id=1, now=NOW + timedelta(seconds=29)).user_id == 2
    with pytest.raises(PlaybackTokenError) as caught:
        signer.verify(token, session_id=1, now=NOW + timedelta(seconds=30))
    assert caught.value.reason == "expired"
    with pytest.raises(PlaybackTokenError) as caught:
        signer.verify(token, session_id=2, now=NOW)
    assert caught.value.reason == "wrong_session"


def test_key_file_is_made_once_private_and_reused(settings: Settings) -> None:
    path = settings.server.data_dir / KEY_FILE_NAME
    assert not path.exists()
    key = signing_key(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 32
    made = path.stat().st_mtime_ns, path.read_text()
    assert signing_key(settings) == key  # a restart, or a second process
    assert (path.stat().st_mtime_ns, path.read_text()) == made
    # No temporary file is left behind.
    assert sorted(os.listdir(path.parent)) == [KEY_FILE_NAME]
    # Tokens from one process verify in another sharing the data_dir.
    token = PlaybackSigner(key).issue(3, None, NOW + timedelta(minutes=1))
    assert PlaybackSigner(signing_key(settings)).verify(token, session_id=3, now=NOW)


def test_a_configured_key_wins_and_makes_no_file(settings: Settings) -> None:
    configured = dataclasses.replace(
        settings,
        streaming=dataclasses.replace(settings.streaming, playback_signing_key="s3cret-key"),
    )
    assert signing_key(configured) == b"s3cret-key"
    assert not (settings.server.data_dir / KEY_FILE_NAME).exists()


def test_a_corrupt_key_file_is_not_silently_replaced(settings: Settings) -> None:
    path: Path = settings.server.data_dir / KEY_FILE_NAME
    path.parent.mkdir(parents=True)
    path.write_text("not hex\n")
    with pytest.raises(RuntimeError):
        signing_key(settings)
    assert path.read_text() == "not hex\n"


# --- the API -------------------------------------------------------------------------------


@dataclass
class Private:
    """A private course of world.teacher, full at one seat: student active, student2
    waitlisted, student3 not enrolled."""

    course_id: int


async def private_course(api: Api, world: World) -> Private:
    course = await api.post(
        "/courses/", world.teacher, expect=201,
        json={"title": "Topology", "category_id": world.category_id,
              "access_level": "private", "capacity": 1},
    )
    c = course["id"]
    for student, status in ((world.student, "active"), (world.student2, "waitlisted")):
        made = await api.post(f"/courses/{c}/enroll-student", world.teacher,
                              json={"student_id": student.id}, expect=201)
        assert made["status"] == status
    return Private(c)


async def go_live(api: Api, world: World, course_id: int) -> int:
    started = await api.post(f"/courses/{course_id}/start-live", world.teacher, expect=200)
    return int(started["session_id"])


def token_of(url: str, session_id: int) -> str:
    _, _, rest = url.partition("/play/")
    sid, token, leaf = rest.split("/")
    assert sid == str(session_id) and leaf in ("master.m3u8", "recording.mp4")
    return token


async def playback(api: Api, session_id: int, who: Person | None, expect: int) -> Any:
    return await api.get(f"/sessions/{session_id}/playback", who, expect=expect)


async def test_who_may_play_a_private_course(api: Api, world: World) -> None:
    private = await private_course(api, world)
    sid = await go_live(api, world, private.course_id)
    public_url = api.settings.public_url
    before = datetime.now(UTC)
    for who in (world.student, world.teacher, world.admin):
        grant = await playback(api, sid, who, 200)
        assert grant["kind"] == "live"
        assert "download_url" not in grant
        assert grant["url"].startswith(f"{public_url}/play/{sid}/")
        assert grant["url"].endswith("/master.m3u8")
        expires = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00"))
        ttl = timedelta(seconds=api.settings.streaming.playback_token_ttl_seconds)
        assert before + ttl - timedelta(seconds=1) <= expires <= datetime.now(UTC) + ttl
    for who in (world.student2, world.student3, world.other_teacher):  # waitlisted, outsiders
        refused = await playback(api, sid, who, 403)
        assert refused["error"]["code"] == "not_enrolled"
    await playback(api, sid, None, 401)
    await api.get(f"/sessions/{sid}/recording", world.student3, expect=403)


async def test_a_restricted_course_is_not_found_by_outsiders(api: Api, world: World) -> None:
    private = await private_course(api, world)
    await api.patch(f"/courses/{private.course_id}/", world.teacher,
                    json={"access_level": "restricted"}, expect=200)
    sid = await go_live(api, world, private.course_id)
    await playback(api, sid, world.student, 200)
    for who in (world.student3, world.other_teacher, None):
        await playback(api, sid, who, 404)
    await playback(api, 999_999, world.admin, 404)


async def test_public_course_anyone_plays_once_live(api: Api, world: World) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    scheduled = await api.post("/sessions/", world.teacher, expect=201, json={
        "course_id": world.course_id, "title": "Later", "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat()})
    refused = await playback(api, scheduled["id"], world.student3, 409)
    assert refused["error"]["code"] == "not_available"
    await playback(api, scheduled["id"], None, 409)

    sid = await go_live(api, world, world.course_id)
    for who in (world.student3, world.other_teacher, None):
        assert (await playback(api, sid, who, 200))["kind"] == "live"
    # Not a write and not a roster read: nothing goes to the audit trail.
    async with api.database.transaction(write=False) as db:
        audited = await db.scalar(
            select(func.count(AuditEntry.id)).where(AuditEntry.action.like("playback.%")))
    assert audited == 0


async def test_recording_after_recording_ready(api: Api, world: World) -> None:
    private = await private_course(api, world)
    sid = await go_live(api, world, private.course_id)
    refused = await api.get(f"/sessions/{sid}/recording", world.student, expect=409)
    assert refused["error"]["code"] == "not_available"
    await api.post(f"/courses/{private.course_id}/end-live", world.teacher, expect=200)
    await playback(api, sid, world.student, 409)
    await api.get(f"/sessions/{sid}/recording", world.student, expect=409)

    # The whole Settings: the signer and public URL are the app's own.
    control = InProcessControl(api.database, api.settings)
    await control.recording_ready(sid)
    public_url = api.settings.public_url
    session = await api.get(f"/sessions/{sid}/", world.student, expect=200)
    assert session["recording_url"] == f"{public_url}/sessions/{sid}/recording"

    grant = await playback(api, sid, world.student, 200)
    assert grant["kind"] == "recording"
    token = token_of(grant["url"], sid)
    assert grant["download_url"] == f"{public_url}/play/{sid}/{token}/recording.mp4"
    decision = await control.authorize_playback(sid, token)
    assert isinstance(decision, PlaybackAllowed) and decision.live is False

    response = await api.client.get(f"/sessions/{sid}/recording", headers=world.student.headers,
                                     allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(f"{public_url}/play/{sid}/")
    assert location.endswith("/recording.mp4")
    assert isinstance(await control.authorize_playback(sid, token_of(location, sid)),
                      PlaybackAllowed)
    for who in (world.student2, world.student3):
        await api.get(f"/sessions/{sid}/recording", who, expect=403)


# --- tokens at the media edge --------------------------------------------------------------


async def test_the_edge_refuses_bad_expired_and_misplaced_tokens(
    api: Api, world: World
) -> None:
    private = await private_course(api, world)
    sid = await go_live(api, world, private.course_id)
    grant = await playback(api, sid, world.student, 200)
    token = token_of(grant["url"], sid)
    control = InProcessControl(api.database, api.settings)

    decision = await control.authorize_playback(sid, token)
    assert isinstance(decision, PlaybackAllowed)
    assert (decision.session_id, decision.live) == (sid, True)
    # The grant is short, so a removal takes effect quickly.
    assert decision.expires_at <= datetime.now(UTC).timestamp() + 10

    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]
    assert await control.authorize_playback(sid, tampered) == PlaybackRefused("bad_token")
    assert await control.authorize_playback(sid + 1, token) == PlaybackRefused("wrong_session")

    expires = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00"))
    late = InProcessControl(api.database, api.settings, clock=lambda: expires)
    assert await late.authorize_playback(sid, token) == PlaybackRefused("expired")
    # Just before expiry the grant ends with the token, not 10 s later.
    nearly = InProcessControl(api.database, api.settings,
                              clock=lambda: expires - timedelta(seconds=3))
    assert await nearly.authorize_playback(sid, token) == PlaybackAllowed(
        sid, True, expires.timestamp())

    # Another key (another deployment) never accepts this one's tokens.
    stranger = InProcessControl(api.database, api.settings.courses,
                                signer=PlaybackSigner(b"another key" * 3))
    assert await stranger.authorize_playback(sid, token) == PlaybackRefused("bad_token")


async def test_a_student_removed_after_getting_a_token_is_refused(
    api: Api, world: World
) -> None:
    private = await private_course(api, world)
    sid = await go_live(api, world, private.course_id)
    token = token_of((await playback(api, sid, world.student, 200))["url"], sid)
    control = InProcessControl(api.database, api.settings)
    assert isinstance(await control.authorize_playback(sid, token), PlaybackAllowed)

    await api.post(f"/courses/{private.course_id}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)
    assert await control.authorize_playback(sid, token) == PlaybackRefused("not_allowed")
    # The seat went to the waitlisted student, who may now play.
    await playback(api, sid, world.student2, 200)

    # Once the session is over without a recording there is nothing to play, even for
    # the teacher.
    teacher_token = token_of((await playback(api, sid, world.teacher, 200))["url"], sid)
    await api.post(f"/courses/{private.course_id}/end-live", world.teacher, expect=200)
    assert await control.authorize_playback(sid, teacher_token) == PlaybackRefused(
        "not_available")


async def test_a_signed_out_token_stops_when_the_course_goes_private(
    api: Api, world: World
) -> None:
    sid = await go_live(api, world, world.course_id)
    token = token_of((await playback(api, sid, None, 200))["url"], sid)
    control = InProcessControl(api.database, api.settings)
    assert isinstance(await control.authorize_playback(sid, token), PlaybackAllowed)
    await api.patch(f"/courses/{world.course_id}/", world.teacher,
                    json={"access_level": "private"}, expect=200)
    assert await control.authorize_playback(sid, token) == PlaybackRefused("not_allowed")
    await playback(api, sid, None, 401)


async def test_a_cancelled_session_is_for_staff_only(api: Api, world: World) -> None:
    sid = await go_live(api, world, world.course_id)
    student_token = token_of((await playback(api, sid, world.student3, 200))["url"], sid)
    await api.post(f"/sessions/{sid}/cancel", world.teacher, expect=200)
    control = InProcessControl(api.database, api.settings)
    assert await control.authorize_playback(sid, student_token) == PlaybackRefused(
        "not_allowed")
    await playback(api, sid, world.student3, 403)
    # Staff pass the access check; a cancelled live session has nothing to play.
    await playback(api, sid, world.teacher, 409)
