"""Media an earlier class left on disk while storage was down reaches storage later, and
its recording is then marked ready; a live session's own spool is left to its queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mediaserver.control_port import ControlUnavailable, PublishDecision
from mediaserver.pending_uploads import PendingUploads
from support.control_fakes import IngestOnlyControl
from transcode.storage.backend import StorageError
from transcode.storage.local import LocalStorage
from transcode.storage.upload_queue import UploadQueue


class DownStorage(LocalStorage):
    """Storage that cannot be reached."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        raise StorageError("connection refused")

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        raise StorageError("connection refused")


class Control(IngestOnlyControl):
    """Records which recordings were said to be ready."""

    def __init__(self) -> None:
        self.ready: list[int] = []
        self.away = False  # the control plane cannot be reached

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        raise AssertionError("not asked here")

    async def session_goes_live(self, course_id: int) -> int:
        raise AssertionError("not asked here")

    async def end_session(self, course_id: int, session_id: int | None = None) -> None:
        raise AssertionError("not asked here")

    async def recording_ready(self, session_id: int) -> None:
        if self.away:
            raise ControlUnavailable("control plane unreachable")
        self.ready.append(session_id)


async def leave_spool(spool: Path, session_id: int, keys: list[str]) -> None:
    """What a session's queue leaves behind when storage is down at the end of class."""
    queue = UploadQueue(DownStorage(spool.parent / "unreachable"), spool / f"session-{session_id}",
                        retry_initial=0.01, retry_max=0.05)
    await queue.start()
    for key in keys:
        queue.put(key, key.encode(), "video/mp2t")
    assert not await queue.close(timeout=0.3)


async def test_left_over_media_is_sent_when_storage_is_back(tmp_path: Path) -> None:
    spool, unsent = tmp_path / "spool", tmp_path / "work" / "unsent"
    await leave_spool(spool, 7, ["recordings/7/hd/000000.ts", "recordings/7/hd/index.m3u8"])
    await leave_spool(spool, 8, ["live/8/hd/000000.ts"])  # still live on this node
    unsent.mkdir(parents=True)
    (unsent / "session-7.mp4").write_bytes(b"an mp4")
    storage, control = LocalStorage(tmp_path / "media"), Control()

    # Storage still down: nothing is lost, nothing is marked ready.
    down = PendingUploads(DownStorage(tmp_path / "media"), control, spool_dir=spool,
                          unsent_dir=unsent, active=lambda: {8}, drain_seconds=0.3)
    await down.retry_once()
    assert control.ready == [] and (unsent / "session-7.mp4").exists()

    pending = PendingUploads(storage, control, spool_dir=spool, unsent_dir=unsent,
                             active=lambda: {8})
    await pending.retry_once()
    assert await storage.list("recordings/7/") == [
        "recordings/7/hd/000000.ts", "recordings/7/hd/index.m3u8", "recordings/7/recording.mp4"]
    assert await storage.get("recordings/7/recording.mp4") == b"an mp4"
    assert control.ready == [7]
    assert not (unsent / "session-7.mp4").exists() and not (spool / "session-7").exists()
    # The live session's spool belongs to its own running queue.
    assert await storage.list("live/") == [] and any((spool / "session-8").iterdir())


async def test_an_mp4_waits_for_its_sessions_playlists(tmp_path: Path) -> None:
    """The recording is marked ready only once its playlists are stored too."""
    spool, unsent = tmp_path / "spool", tmp_path / "work" / "unsent"
    await leave_spool(spool, 3, ["recordings/3/hd/index.m3u8"])
    unsent.mkdir(parents=True)
    (unsent / "session-3.mp4").write_bytes(b"mp4")
    control = Control()

    class PlaylistsDown(LocalStorage):
        async def put(self, key: str, data: bytes, content_type: str) -> None:
            raise StorageError("still failing")

    pending = PendingUploads(PlaylistsDown(tmp_path / "media"), control, spool_dir=spool,
                             unsent_dir=unsent, active=set, drain_seconds=0.3)
    await pending.retry_once()
    assert control.ready == [] and (unsent / "session-3.mp4").exists()


async def test_a_spool_is_handed_over_when_its_session_comes_back(tmp_path: Path) -> None:
    """After a restart the pending-uploads pass is draining a session's spool (storage
    down) when the encoder reconnects into that session: the pass lets go of the spool at
    once and the session's own queue sends it; never both at the same time."""
    spool, unsent = tmp_path / "spool", tmp_path / "work" / "unsent"
    await leave_spool(spool, 7, ["recordings/7/hd/000000.ts", "recordings/7/hd/000001.ts"])
    active: set[int] = set()
    pending = PendingUploads(DownStorage(tmp_path / "media"), Control(), spool_dir=spool,
                             unsent_dir=unsent, active=lambda: set(active),
                             drain_seconds=600)
    draining = asyncio.create_task(pending.retry_once())
    await asyncio.sleep(0.5)
    assert not draining.done()  # storage is down: it keeps trying
    active.add(7)  # the session is live here again
    storage = LocalStorage(tmp_path / "media")
    live = UploadQueue(storage, spool / "session-7")
    await asyncio.wait_for(live.start(), 20)  # handed over, not after the 600 s drain
    await asyncio.wait_for(draining, 20)
    live.put("recordings/7/hd/000002.ts", b"new", "video/mp2t")
    assert await live.flush(timeout=20)
    assert await storage.list("recordings/7/") == [
        f"recordings/7/hd/{n:06d}.ts" for n in range(3)]
    await live.close(timeout=5)


async def test_a_ready_recording_the_control_plane_missed_is_told_again(tmp_path: Path) -> None:
    spool, unsent = tmp_path / "spool", tmp_path / "work" / "unsent"
    unsent.mkdir(parents=True)
    (unsent / "session-9.mp4").write_bytes(b"an mp4")
    storage, control = LocalStorage(tmp_path / "media"), Control()
    control.away = True
    pending = PendingUploads(storage, control, spool_dir=spool, unsent_dir=unsent,
                             active=set)
    await pending.retry_once()  # stored, but the control plane did not hear of it
    assert await storage.get("recordings/9/recording.mp4") == b"an mp4"
    assert not (unsent / "session-9.mp4").exists() and control.ready == []
    await pending.retry_once()
    assert control.ready == []
    control.away = False
    await pending.retry_once()
    await pending.retry_once()
    assert control.ready == [9]  # told once it answers, and once only
