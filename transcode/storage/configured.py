"""The storage backend the settings name: a local folder or an S3/MinIO bucket."""

from __future__ import annotations

from config.settings import Settings
from transcode.storage.backend import Storage
from transcode.storage.local import LocalStorage
from transcode.storage.s3 import S3Storage

__all__ = ["open_storage"]

BACKENDS = ("local", "s3")


def open_storage(settings: Settings) -> Storage:
    """Build the backend `settings.storage.storage_backend` names; ValueError if unknown."""
    conf = settings.storage
    backend = conf.storage_backend.strip().lower()
    if backend == "local":
        return LocalStorage(settings.media_dir)
    if backend == "s3":
        if not conf.s3_endpoint:
            raise ValueError("storage_backend is 's3' but s3_endpoint is empty")
        return S3Storage(
            conf.s3_endpoint,
            conf.s3_access_key,
            conf.s3_secret_key,
            conf.s3_bucket,
            region=conf.s3_region or None,
            secure=conf.s3_secure,
        )
    raise ValueError(
        f"unknown storage_backend {conf.storage_backend!r}: expected one of {', '.join(BACKENDS)}"
    )
