"""The retention job: every `storage_check_minutes`, measure storage and delete what the
policy says (control/storage_policy/). Run by the process with both the database and the
storage (`--role all` or `control`; mediaserver/process.py)."""

from __future__ import annotations

import asyncio
import logging

from config.settings import Settings
from control.db.database import Database
from control.models.base import utcnow
from control.storage_policy.enforcement import enforce_retention
from control.storage_policy.media_store import MediaStore

__all__ = ["enforce_retention_forever"]

log = logging.getLogger(__name__)


async def enforce_retention_forever(settings: Settings, database: Database,
                                    store: MediaStore) -> None:
    interval = max(settings.storage.storage_check_minutes, 1) * 60.0
    while True:
        try:
            report = await enforce_retention(settings, database, store, now=utcnow())
            if report is not None and (report.deleted or report.failed):
                log.info("retention: %d recordings deleted, %d refused by storage; "
                         "%d of %d bytes used", len(report.deleted), len(report.failed),
                         report.used_after, report.limit)
        except Exception:
            # A failed run (storage or database unreachable) is retried at the next one.
            log.exception("retention run failed")
        await asyncio.sleep(interval)
