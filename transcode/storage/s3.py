"""Storage in an S3 or MinIO bucket, over the `minio` SDK.

The SDK blocks, so every call runs in this backend's own small thread pool (never the
loop's default executor, which other work shares). Connect and read timeouts are short and
retries few, so an unreachable server fails in seconds with StorageError instead of hanging
the upload queue. The bucket is created on first use; if it disappears (a server wiped and
restarted) the next call after the failure creates it again.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from transcode.storage.backend import SizedKeys, StorageError, check_key

__all__ = ["S3Storage"]

_T = TypeVar("_T")
_MISSING = frozenset({"NoSuchKey", "NoSuchObject"})
# One multi-object delete request carries at most 1000 keys (the S3 limit).
_DELETE_BATCH = 1000


def _check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key or the start of one (a trailing '/' allowed)."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _is_missing(exc: S3Error) -> bool:
    return exc.code in _MISSING


class S3Storage:
    """The `Storage` protocol over one bucket of an S3-compatible server.

    `endpoint` is "host:port", or a URL whose scheme then decides `secure`.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        region: str | None = None,
        secure: bool = False,
        timeout: float = 3.0,
        threads: int = 4,
    ) -> None:
        if "://" in endpoint:
            url = urlsplit(endpoint)
            secure = url.scheme == "https"
            endpoint = url.netloc
        self.bucket = bucket
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout * 3),
            retries=urllib3.Retry(
                total=2, backoff_factor=0.1, status_forcelist=(500, 502, 503, 504)
            ),
            maxsize=threads,
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region or None,
            http_client=self._http,
        )
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3-storage")
        self._bucket_ready = False
        self._bucket_lock = asyncio.Lock()

    async def _blocking(self, func: Callable[[], _T]) -> _T:
        """Run an SDK call in the pool; network and server failures become StorageError."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, func)
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                self._bucket_ready = False  # Wiped behind our back: create it again next time.
            raise StorageError(f"S3 {self.bucket}: {exc.code}: {exc.message}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"S3 {self.bucket}: {type(exc).__name__}: {exc}") from exc

    async def _call(self, func: Callable[[], _T]) -> _T:
        await self._ensure_bucket()
        return await self._blocking(func)

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if self._bucket_ready:
                return

            def create() -> None:
                if self._client.bucket_exists(self.bucket):
                    return
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    # Another process (or node) created it between our check and now.
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise

            await self._blocking(create)
            self._bucket_ready = True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        await self._call(
            lambda: self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
        )

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        check_key(key)
        await self._call(
            lambda: self._client.fput_object(self.bucket, key, path, content_type=content_type)
        )

    async def get(self, key: str) -> bytes | None:
        check_key(key)

        def read() -> bytes | None:
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as exc:
                if _is_missing(exc):
                    return None
                raise
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        return await self._call(read)

    def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        return self.stream_range(key, 0, None, chunk_size)

    async def stream_range(
        self, key: str, start: int, length: int | None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        check_key(key)

        def open_object() -> Any:
            try:
                return self._client.get_object(self.bucket, key, offset=start,
                                               length=length or 0)
            except S3Error as exc:
                if _is_missing(exc):
                    return None
                raise

        response = await self._call(open_object)
        if response is None:
            raise KeyError(key)
        try:
            while chunk := await self._blocking(lambda: bytes(response.read(chunk_size))):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def size(self, key: str) -> int | None:
        check_key(key)

        def stat() -> int | None:
            try:
                return self._client.stat_object(self.bucket, key).size
            except S3Error as exc:
                if _is_missing(exc):
                    return None
                raise

        return await self._call(stat)

    async def delete(self, key: str) -> None:
        check_key(key)
        # S3 answers a delete of a missing key with success, as the protocol wants.
        await self._call(lambda: self._client.remove_object(self.bucket, key))

    def _keys(self, prefix: str) -> list[str]:
        objects = self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
        return sorted(str(obj.object_name) for obj in objects)

    async def list(self, prefix: str) -> list[str]:
        _check_prefix(prefix)
        return await self._call(lambda: self._keys(prefix))

    async def list_sizes(self, prefix: str) -> SizedKeys:
        _check_prefix(prefix)

        def measure() -> SizedKeys:
            # The listing carries each object's size: no request per object.
            objects = self._client.list_objects(self.bucket, prefix=prefix or None,
                                                recursive=True)
            return sorted((str(obj.object_name), int(obj.size or 0)) for obj in objects)

        return await self._call(measure)

    async def delete_prefix(self, prefix: str) -> int:
        _check_prefix(prefix)

        def remove_all() -> int:
            keys = self._keys(prefix)
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = [DeleteObject(k) for k in keys[start : start + _DELETE_BATCH]]
                # The SDK sends the request lazily, while its error iterator is consumed.
                errors = list(self._client.remove_objects(self.bucket, batch))
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"S3 {self.bucket}: {len(errors)} deletes failed, first "
                        f"{first.name}: {first.code}: {first.message}"
                    )
            return len(keys)

        return await self._call(remove_all)

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._http.clear()
