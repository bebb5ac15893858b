"""The live pipeline end to end, as a teacher and a student meet it.

A real encoder publishes to a whole node (RTMP server, transcode workers, storage, HLS
delivery, API); the test then plays what a browser would: it asks the API for a playback
URL, reads the master playlist and each rendition's playlist, and decodes segments with
PyAV. After the class it replays the recording and decodes its MP4.

The sources are OBS-like: H.264 with an 8 s keyframe interval and AAC. They are 15 fps and
the ladder uses x264's ultrafast preset, so three renditions encode in real time on two
cores even while other tests run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from support.client_process import run_client
from support.gstreamer import GST_LAUNCH, Client, aac_encoder, pipeline, require
from support.hls_validator import validate_playlists
from support.live_stack import (
    LiveStack,
    decode,
    finished,
    media_segments,
    publish_ffmpeg,
    stack_settings,
    variants,
    wait_for,
)
from support.s3_server import S3Server, s3_server  # noqa: F401  (the fixture)
from transcode.hls_playlist import parse_media_playlist

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/ffmpeg").exists(), reason="needs Debian's ffmpeg: apt-get install ffmpeg"
)


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[LiveStack]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    async with LiveStack(stack_settings(tmp_path / "var", **overrides)) as live:
        yield live


async def rendition_playlist(stack: LiveStack, master_url: str, uri: str,
                             *, min_segments: int = 1, within: float = 20.0) -> str:
    url = master_url.rsplit("/", 1)[0] + "/" + uri

    async def enough() -> str | None:
        status, body, _ = await stack.get(url)
        text = body.decode()
        return text if status == 200 and len(media_segments(text)) >= min_segments else None

    playlist: str = await wait_for(enough, within=within, what=f"segments in {uri}")
    return playlist


async def media_file(stack: LiveStack, master_url: str, rendition: str, uri: str) -> bytes:
    status, body, headers = await stack.get(master_url.rsplit("/", 1)[0] + f"/{rendition}/{uri}")
    assert status == 200, body
    expected = "video/mp4" if uri.startswith("init_") else "video/iso.segment"
    assert headers["Content-Type"] == expected
    return body


async def playable(stack: LiveStack, master_url: str, rendition: str,
                   playlist: str, number: int) -> bytes:
    """Segment `number` of a media playlist with the init it needs before it: what a
    player appends to its buffer."""
    segments = parse_media_playlist(playlist).segments
    init = next(s.init_uri for s in reversed(segments[:number + 1]) if s.init_uri)
    assert init is not None
    return (await media_file(stack, master_url, rendition, init)
            + await media_file(stack, master_url, rendition, segments[number].uri))


def parts_of(playlist: str) -> dict[str, list[str]]:
    """Each listed segment's part URIs (EXT-X-PART lines come before their segment)."""
    found: dict[str, list[str]] = {}
    pending: list[str] = []
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PART:"):
            pending.append(re.search(r'URI="([^"]+)"', line).group(1))  # type: ignore[union-attr]
        elif line and not line.startswith("#"):
            if pending:
                found[line] = pending
            pending = []
    return found


async def test_a_publish_plays_as_a_ladder_and_then_as_a_recording(stack: LiveStack) -> None:
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=10)
    session_id = await stack.live_session_id()

    # While live: the API tells the truth about the stream.
    async def described() -> dict[str, Any] | None:
        stream = (await stack.live_status())["stream"]
        return stream if stream and stream["renditions"] else None

    stream = await wait_for(described, within=20, what="the stream's renditions")
    assert stream["input"]["video_codec"] == "h264" and stream["input"]["audio_codec"] == "aac"
    assert (stream["input"]["width"], stream["input"]["height"]) == (1280, 720)
    assert [r["name"] for r in stream["renditions"]] == ["hd", "sd", "mobile", "audio"]

    playback = await stack.playback(session_id)
    url = playback["url"]
    assert playback["kind"] == "live"
    status, body, headers = await stack.get(url)
    assert status == 200, body
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Access-Control-Allow-Origin"] == "*"
    master = body.decode()
    ladder = variants(master)
    sizes = {uri.split("/")[0]: attrs.get("RESOLUTION") for attrs, uri in ladder}
    assert sizes == {"hd": "1280x720", "sd": "854x480", "mobile": "640x360", "audio": None}
    assert all(int(attrs["BANDWIDTH"]) > 0 and attrs["CODECS"] for attrs, _ in ladder)
    # The sound is encoded once: every video rung plays the one audio rendition.
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master
    assert all(attrs.get("AUDIO") == "audio" for attrs, uri in ladder if attrs.get("RESOLUTION"))

    # Low-Latency HLS: at least three segments in, each rung's playlist lists the class
    # from its first segment (rewind) and parts near the live edge, and validates.
    playlists = {name: await rendition_playlist(stack, url, f"{name}/index.m3u8",
                                                min_segments=3, within=30)
                 for name in ("hd", "sd", "mobile", "audio")}
    validate_playlists({**{f"{n}/index.m3u8": t for n, t in playlists.items()},
                        "master.m3u8": master})
    expected = {"hd": (1280, 720), "sd": (854, 480), "mobile": (640, 360)}
    for name, size in expected.items():
        playlist = playlists[name]
        assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES" in playlist
        assert "#EXT-X-PRELOAD-HINT:TYPE=PART" in playlist
        first = media_segments(playlist)[0]
        assert first.uri == "000000.m4s" and 1.5 <= first.duration <= 2.5
        decoded = decode(await playable(stack, url, name, playlist, 0))
        assert decoded["size"] == size and decoded["first_keyframe"]
        assert decoded["audio"] == []  # the audio rendition carries the sound
    audio = playlists["audio"]
    decoded = decode(await playable(stack, url, "audio", audio, 0))
    assert decoded["video"] == [] and decoded["audio"] == ["aac"]

    # Rungs are cut at the same instants: their complete segments last the same.
    durations = [[round(s.duration, 3) for s in media_segments(playlists[n])[:2]]
                 for n in expected]
    assert durations[0] == durations[1] == durations[2]

    # A segment's parts, joined, are the segment itself; its first part plays alone.
    hd = playlists["hd"]
    listed = parts_of(hd)
    uri, part_uris = next(iter(listed.items()))
    parts = [await media_file(stack, url, "hd", p) for p in part_uris]
    assert b"".join(parts) == await media_file(stack, url, "hd", uri)
    init = parse_media_playlist(hd).segments[0].init_uri
    assert init is not None
    first_part = decode(await media_file(stack, url, "hd", init) + parts[0])
    assert first_part["first_keyframe"] and 1 <= first_part["frames"] <= 6

    # A blocking reload for the part after the hinted one returns once it exists.
    hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(\d+)\.(\d+)\.m4s"', hd)
    assert hint is not None
    msn, part = int(hint.group(1)), int(hint.group(2))
    status, body, _ = await stack.get(
        url.replace("master.m3u8", f"hd/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"))
    assert status == 200
    newer = body.decode()
    assert f'{msn:06d}.{part}.m4s' in newer or len(media_segments(newer)) > msn
    assert "_HLS_" not in "".join(line for line in newer.splitlines()
                                  if not line.startswith("#EXT-X-SERVER-CONTROL"))

    # A player without Low-Latency support (ffmpeg's HLS reader) plays the same playlist
    # as plain HLS, from the class's first segment.
    plain = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-live_start_index", "0",
        "-i", url.replace("master.m3u8", "hd/index.m3u8"), "-map", "0:v", "-frames:v", "15",
        "-f", "null", "-", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    code, errors = await finished(plain, within=30)
    assert code == 0, errors

    # The player that just fetched the ladder counts as a viewer.
    assert (await stack.live_status())["stream"]["viewers"] == 1

    # A token that was tampered with plays nothing.
    forged = url.replace("/master.m3u8", "x/master.m3u8")
    assert (await stack.get(forged))[0] == 403

    code, errors = await finished(publisher, within=40)
    assert code == 0, errors

    # After the grace period the class ends and its recording replays: the same objects
    # the live playlist named, now with ENDLIST.
    session = await stack.recording_ready(session_id)
    assert session["status"] == "ended"
    assert session["recording_url"].endswith(f"/sessions/{session_id}/recording")
    replay = await stack.playback(session_id)
    assert replay["kind"] == "recording"
    recorded = (await stack.get(replay["url"].replace("master.m3u8", "hd/index.m3u8")))[1]
    vod = recorded.decode()
    validate_playlists({"hd/index.m3u8": vod})
    assert "#EXT-X-ENDLIST" in vod and "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    live_uris = [s.uri for s in media_segments(hd)]
    assert [s.uri for s in media_segments(vod)][:len(live_uris)] == live_uris
    assert abs(sum(s.duration for s in media_segments(vod)) - 10) <= 2.1
    whole = decode(await playable(stack, replay["url"], "hd", vod, 0)
                   + b"".join([await media_file(stack, replay["url"], "hd", s.uri)
                               for s in media_segments(vod)[1:]]))
    assert abs(whole["frames"] / 15 - 10) <= 2.1  # 15 fps: the whole class replays
    status, mp4, headers = await stack.get(replay["download_url"])
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    recording = decode(mp4)
    assert recording["video"] == ["h264"] and recording["audio"] == ["aac"]
    assert recording["size"] == (1280, 720)  # the source's own quality
    assert abs(recording["duration"] - 10) <= 1.0
    status, poster, headers = await stack.get(replay["poster_url"])
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert decode(poster, fmt="image2")["size"][0] == 640
    assert stack.node is not None
    assert await stack.node.storage.list(f"live/{session_id}/") == []
    assert await stack.node.storage.list(f"recordings/{session_id}/hd/")


@pytest.mark.parametrize("stack", [{"reconnect_grace_seconds": 8}], indirect=True)
async def test_a_publisher_back_within_the_grace_period_continues_the_session(
    stack: LiveStack,
) -> None:
    first = await publish_ffmpeg(stack.rtmp_url, seconds=5, size="640x360")
    session_id = await stack.live_session_id()
    assert (await finished(first, within=30))[0] == 0
    await asyncio.sleep(1)
    assert (await stack.live_status())["session_id"] == session_id  # still live, waiting
    second = await publish_ffmpeg(stack.rtmp_url, seconds=5, size="640x360")
    assert (await finished(second, within=30))[0] == 0
    assert (await stack.live_status())["session_id"] == session_id

    await stack.recording_ready(session_id)
    sessions = await stack.json("GET", f"/courses/{stack.course_id}/sessions/")
    assert [s["id"] for s in sessions["results"]] == [session_id]
    replay = await stack.playback(session_id)
    mobile = (await stack.get(replay["url"].replace("master.m3u8",
                                                    "mobile/index.m3u8")))[1].decode()
    segments = media_segments(mobile)
    assert sum(s.discontinuity for s in segments) == 1  # where the publisher came back
    # The numbering went on across the reconnect, and the new run brought its own init.
    assert [s.uri for s in segments] == [f"{n:06d}.m4s" for n in range(len(segments))]
    parsed = parse_media_playlist(mobile).segments
    back = next(n for n, s in enumerate(parsed) if s.discontinuity)
    assert parsed[back].init_uri == f"init_{back:06d}.mp4" != parsed[0].init_uri
    assert abs(sum(s.duration for s in segments) - 10) <= 2.5
    recording = decode((await stack.get(replay["download_url"]))[1])
    assert abs(recording["duration"] - 10) <= 1.5


async def test_end_live_disconnects_the_publisher_and_finalises(stack: LiveStack) -> None:
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=120, size="640x360")
    session_id = await stack.live_session_id()
    await asyncio.sleep(4)
    await stack.json("POST", f"/courses/{stack.course_id}/end-live")
    # The encoder is cut off at once (OBS shows its reconnect dialog).
    code, _ = await finished(publisher, within=15)
    assert code != 0
    session = await stack.recording_ready(session_id)
    assert session["status"] == "ended"
    assert (await stack.live_status())["is_live"] is False
    recording = decode((await stack.get((await stack.playback(session_id))["download_url"]))[1])
    assert 2 <= recording["duration"] <= 8


def _worker_ffmpeg_pids() -> list[int]:
    """ffmpeg processes of this test process reading FLV from a pipe (the workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines()
                       if line.startswith("PPid:")), "")
        if parent == str(os.getpid()) and b"pipe:0" in cmdline:
            pids.append(int(entry.name))
    return pids


async def test_a_worker_that_dies_is_restarted_and_the_stream_goes_on(stack: LiveStack) -> None:
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=16, size="640x360", gop_seconds=2)
    session_id = await stack.live_session_id()
    playback = await stack.playback(session_id)
    await rendition_playlist(stack, playback["url"], "mobile/index.m3u8", min_segments=2)
    (pid,) = _worker_ffmpeg_pids()
    os.kill(pid, signal.SIGKILL)

    async def continued() -> bool:
        _, body, _ = await stack.get(playback["url"].replace("master.m3u8",
                                                                  "mobile/index.m3u8"))
        segments = media_segments(body.decode())
        return any(s.discontinuity for s in segments) and not segments[-1].discontinuity

    await wait_for(continued, within=20, what="segments after the restart")
    stream = (await stack.live_status())["stream"]
    assert stream["worker"]["restarts"] == 1 and not stream["worker"]["failed"]
    assert (await finished(publisher, within=30))[0] == 0
    metrics = await stack.metrics()
    assert "academia_worker_restarts_total 1.0" in metrics


@pytest.mark.parametrize("stack", [{"transcode_mode": "passthrough"}], indirect=True)
async def test_passthrough_serves_the_source_remuxed(stack: LiveStack) -> None:
    # A 2 s GOP, as streaming guides tell OBS users: passthrough cuts only at keyframes.
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=8, size="960x540",
                                     gop_seconds=2)
    session_id = await stack.live_session_id()
    playback = await stack.playback(session_id)

    async def master() -> bytes | None:
        # The ladder is known once the source has been probed (its first keyframe).
        status, body, _ = await stack.get(playback["url"])
        return body if status == 200 else None

    body = await wait_for(master, within=20, what="the master playlist")
    ((attrs, uri),) = variants(body.decode())
    assert attrs["RESOLUTION"] == "960x540" and uri == "source/index.m3u8"
    playlist = await rendition_playlist(stack, playback["url"], uri, min_segments=2)
    # The same Low-Latency playlist and parts as the ladder, the source's own sound muxed.
    validate_playlists({uri: playlist, "master.m3u8": body.decode()})
    assert parts_of(playlist) and "#EXT-X-PRELOAD-HINT:TYPE=PART" in playlist
    decoded = decode(await playable(stack, playback["url"], "source", playlist, 0))
    assert decoded["size"] == (960, 540) and decoded["audio"] == ["aac"]
    assert (await finished(publisher, within=30))[0] == 0
    await stack.recording_ready(session_id)


@pytest.mark.parametrize("sink", ["rtmpsink", "rtmp2sink"])
async def test_gstreamer_clients_produce_a_playable_ladder(stack: LiveStack, sink: str) -> None:
    """librtmp (OBS's lineage) and GStreamer's own client, with OBS's 8 s keyframe interval."""
    require(sink, "x264enc", "flvmux", "h264parse", "videotestsrc", "audiotestsrc",
             "audioconvert", "aacparse")
    if aac_encoder() is None:
        pytest.skip("no GStreamer AAC encoder (voaacenc or avenc_aac)")
    args = [f"location={stack.rtmp_url}" if arg.startswith("location=") else arg
            for arg in pipeline(Client(sink), 0, audio=True, key_int_max=240)]
    assert GST_LAUNCH is not None
    publish = asyncio.create_task(run_client(GST_LAUNCH, args, within=40, merge_output=True))
    session_id = await stack.live_session_id()
    playback = await stack.playback(session_id)
    playlist = await rendition_playlist(stack, playback["url"], "mobile/index.m3u8")
    decoded = decode(await playable(stack, playback["url"], "mobile", playlist, 0))
    assert decoded["size"] == (640, 360)
    sound = await rendition_playlist(stack, playback["url"], "audio/index.m3u8")
    assert decode(await playable(stack, playback["url"], "audio", sound, 0))["audio"] == ["aac"]
    code, output = await publish
    assert code == 0, output[-2000:]
    await stack.recording_ready(session_id)
    recording = decode((await stack.get((await stack.playback(session_id))["download_url"]))[1])
    assert recording["size"] == (640, 360) and abs(recording["duration"] - 4) <= 1.0


@pytest.fixture
async def s3_stack(
    tmp_path: Path, s3_server: S3Server,  # noqa: F811 (the imported fixture)
) -> AsyncIterator[LiveStack]:
    settings = stack_settings(tmp_path / "var")
    settings = dataclasses.replace(settings, storage=dataclasses.replace(
        settings.storage, storage_backend="s3", s3_endpoint=s3_server.endpoint,
        s3_access_key="test", s3_secret_key="test-secret", s3_bucket="academia-media"))
    async with LiveStack(settings) as live:
        yield live


async def test_media_goes_to_s3_and_plays_from_there(s3_stack: LiveStack) -> None:
    stack = s3_stack
    publisher = await publish_ffmpeg(stack.rtmp_url, seconds=6, size="640x360")
    session_id = await stack.live_session_id()
    playback = await stack.playback(session_id)
    playlist = await rendition_playlist(stack, playback["url"], "mobile/index.m3u8")
    decoded = decode(await playable(stack, playback["url"], "mobile", playlist, 0))
    assert decoded["size"] == (640, 360)
    assert (await finished(publisher, within=30))[0] == 0
    await stack.recording_ready(session_id)
    assert stack.node is not None
    keys = await stack.node.storage.list(f"recordings/{session_id}/")
    assert f"recordings/{session_id}/recording.mp4" in keys
    assert f"recordings/{session_id}/mobile/index.m3u8" in keys
    assert not (stack.settings.media_dir / "recordings").exists()  # nothing kept locally
    recording = decode((await stack.get((await stack.playback(session_id))["download_url"]))[1])
    assert abs(recording["duration"] - 6) <= 1.0


async def test_a_broken_publisher_and_garbage_leave_another_class_untouched(
    stack: LiveStack,
) -> None:
    """One teacher's encoder crashes and someone sends garbage; another class goes on."""
    other_course, other_key = await stack.add_course("Other class")
    steady = await publish_ffmpeg(stack.rtmp_url_for(other_key), seconds=10, size="640x360")
    crashing = await publish_ffmpeg(stack.rtmp_url, seconds=60, size="640x360")
    steady_session = await stack.live_session_id(course_id=other_course)
    crashing_session = await stack.live_session_id()
    await asyncio.sleep(3)
    crashing.kill()  # the encoder dies without a goodbye: the connection just drops
    await crashing.wait()
    _, writer = await asyncio.open_connection("127.0.0.1", stack.settings.streaming.rtmp_port)
    writer.write(b"\x03" + os.urandom(1536) + b"GET / HTTP/1.0\r\n\r\n" * 100)
    await writer.drain()
    writer.close()

    assert (await finished(steady, within=30))[0] == 0
    steady_done = await stack.recording_ready(steady_session)
    crashed_done = await stack.recording_ready(crashing_session)
    assert steady_done["status"] == crashed_done["status"] == "ended"
    steady_replay = await stack.playback(steady_session)
    recording = decode((await stack.get(steady_replay["download_url"]))[1])
    assert abs(recording["duration"] - 10) <= 1.0
    mobile = (await stack.get(steady_replay["url"].replace("master.m3u8",
                                                           "mobile/index.m3u8")))[1].decode()
    assert not any(s.discontinuity for s in media_segments(mobile))
