"""S3Storage against a real S3 server (moto, over HTTP): the same behaviour table as
LocalStorage, plus bucket creation and failing fast when the server is unreachable."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from minio import Minio

from config.settings import ServerSettings, Settings, StorageSettings
from control.storage_policy.usage import measure
from mediaserver.recording_store import RecordingStore
from support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401
from support.storage_behaviours import BEHAVIOURS, Behaviour
from transcode.storage.backend import StorageError
from transcode.storage.configured import open_storage
from transcode.storage.local import LocalStorage
from transcode.storage.s3 import S3Storage

_bucket_numbers = itertools.count(1)


def new_bucket() -> str:
    return f"academia-test-{next(_bucket_numbers)}"


def raw_client(server: S3Server) -> Minio:
    return Minio(server.endpoint, ACCESS_KEY, SECRET_KEY, secure=False)


@pytest.fixture
async def storage(s3_server: S3Server) -> AsyncIterator[S3Storage]:  # noqa: F811
    store = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, new_bucket())
    yield store
    await store.close()


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
async def test_behaviour(storage: S3Storage, tmp_path: Path, behaviour: Behaviour) -> None:
    await behaviour(storage, tmp_path)


async def test_bucket_is_created_when_missing(s3_server: S3Server) -> None:  # noqa: F811
    bucket = new_bucket()
    client = raw_client(s3_server)
    assert not client.bucket_exists(bucket)
    store = S3Storage(f"http://{s3_server.endpoint}", ACCESS_KEY, SECRET_KEY, bucket)
    try:
        assert await store.list("") == []
        assert client.bucket_exists(bucket)
        await store.put("live/1/a.ts", b"abc", "video/mp2t")
        reply = client.get_object(bucket, "live/1/a.ts")
        try:
            assert reply.read() == b"abc"
            assert reply.headers["Content-Type"] == "video/mp2t"
        finally:
            reply.close()
            reply.release_conn()
    finally:
        await store.close()


async def test_bucket_created_meanwhile_by_another_node(
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Outside us-east-1, creating a bucket one already owns answers BucketAlreadyOwnedByYou.
    bucket = new_bucket()
    raw = Minio(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, secure=False, region="eu-west-1")
    raw.make_bucket(bucket)
    store = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, bucket, region="eu-west-1")
    # The race: our existence check ran before the other node's creation.
    monkeypatch.setattr(store._client, "bucket_exists", lambda name: False)
    try:
        await store.put("live/1/a.ts", b"abc", "video/mp2t")
        assert await store.get("live/1/a.ts") == b"abc"
    finally:
        await store.close()


async def test_unreachable_server_raises_storage_error(s3_server: S3Server) -> None:  # noqa: F811
    store = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, new_bucket(), timeout=1.0)
    try:
        await store.put("live/1/a.ts", b"before", "video/mp2t")
        s3_server.stop()
        try:
            with pytest.raises(StorageError):
                await store.put("live/1/b.ts", b"during", "video/mp2t")
            with pytest.raises(StorageError):
                await store.get("live/1/a.ts")
            with pytest.raises(StorageError):
                await store.list("live/")
            with pytest.raises(StorageError):
                await store.delete_prefix("live/")
        finally:
            s3_server.start()
        # The restarted server lost everything, its bucket included: it is made again.
        with pytest.raises(StorageError):
            await store.put("live/1/c.ts", b"after", "video/mp2t")
        await store.put("live/1/c.ts", b"after", "video/mp2t")
        assert await store.list("live/") == ["live/1/c.ts"]
    finally:
        await store.close()


def test_open_storage_picks_the_configured_backend(tmp_path: Path) -> None:
    local = Settings(server=ServerSettings(data_dir=tmp_path / "var"))
    store = open_storage(local)
    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path / "var" / "media"

    s3 = Settings(storage=StorageSettings(
        storage_backend="s3", s3_endpoint="minio.example:9000", s3_access_key="k",
        s3_secret_key="s", s3_bucket="media",
    ))
    store_s3 = open_storage(s3)
    assert isinstance(store_s3, S3Storage)
    assert store_s3.bucket == "media"

    with pytest.raises(ValueError, match="s3_endpoint"):
        open_storage(Settings(storage=StorageSettings(storage_backend="s3")))
    with pytest.raises(ValueError, match="unknown storage_backend 'ftp'"):
        open_storage(Settings(storage=StorageSettings(storage_backend="ftp")))


async def test_the_control_planes_port_measures_and_deletes_a_recording_in_s3(
        storage: S3Storage) -> None:
    """What GET /storage and the retention job see of a bucket (mediaserver's
    RecordingStore over S3): every object with its size; a recording deleted whole,
    nothing beside it."""
    store = RecordingStore(storage)
    await storage.put("recordings/3/hd/000001.m4s", b"s" * 300, "video/iso.segment")
    await storage.put("recordings/3/recording.mp4", b"m" * 700, "video/mp4")
    await storage.put("recordings/30/hd/000001.m4s", b"k" * 5, "video/iso.segment")
    await storage.put("resources/3/notes.pdf", b"r" * 9, "application/pdf")
    usage = measure(await store.objects())
    assert usage.by_kind == {"live": 0, "recording": 305, "mp4": 700, "resources": 9,
                             "other": 0}
    assert await store.delete_recording(3) == 2
    assert [k for k, _ in await store.objects()] == ["recordings/30/hd/000001.m4s",
                                                     "resources/3/notes.pdf"]
