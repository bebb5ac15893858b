"""One run of the retention job: measure storage, plan with the policy, delete, audit.

Each deletion is audited and the session's `recording_url` cleared in a committed
transaction *before* the bytes go: a deletion is never unaudited, and a storage refusal
afterwards leaves bytes that the next run (which plans from storage again) deletes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from config.settings import Settings
from control.db.database import Database
from control.models import AuditEntry, CourseSession
from control.storage_policy.facts import live_session_ids, session_facts
from control.storage_policy.media_store import MediaStore
from control.storage_policy.one_runner import retention_turn
from control.storage_policy.retention import (
    WARNING_SHARE,
    Deletion,
    RecordingFacts,
    plan_deletions,
)
from control.storage_policy.usage import Usage, measure

__all__ = ["AUDIT_ACTION", "EnforcementReport", "enforce_retention", "limit_bytes"]

log = logging.getLogger(__name__)

AUDIT_ACTION = "storage.recording_deleted"
GB = 1_000_000_000


def limit_bytes(settings: Settings) -> int:
    return settings.storage.vod_storage_limit_gb * GB


@dataclass
class EnforcementReport:
    used_before: int
    used_after: int
    limit: int
    deleted: list[Deletion] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # session ids storage refused

    @property
    def warning(self) -> bool:
        return self.used_after >= self.limit * WARNING_SHARE


async def enforce_retention(settings: Settings, database: Database, store: MediaStore, *,
                            now: datetime) -> EnforcementReport | None:
    """One run; None when another control process is running it now (its turn)."""
    async with retention_turn(database) as mine:
        if not mine:
            return None
        return await _enforce(settings, database, store, now)


async def _enforce(settings: Settings, database: Database, store: MediaStore,
                   now: datetime) -> EnforcementReport:
    objects = await store.objects()
    async with database.transaction(write=False) as db:
        live = await live_session_ids(db)
        usage: Usage = measure(objects, live)
        facts = await session_facts(db, usage.by_session)
    recordings = [
        RecordingFacts(sid, f.course_id, usage.recording_bytes(sid), sid in live, f.ended_at,
                       f.started_at, f.retention_days)
        for sid, f in facts.items()
    ]
    limit = limit_bytes(settings)
    plan = plan_deletions(recordings, used_bytes=usage.total, limit_bytes=limit, now=now)
    report = EnforcementReport(usage.total, usage.total, limit)
    for deletion in plan:
        async with database.transaction(write=True) as db:
            session = await db.get(CourseSession, deletion.session_id)
            if session is not None:
                session.recording_url = ""
            db.add(AuditEntry(
                actor_id=None, action=AUDIT_ACTION, method="JOB",
                path=f"/sessions/{deletion.session_id}/recording", status=200,
                detail={"session_id": deletion.session_id, "course_id": deletion.course_id,
                        "bytes": deletion.bytes, "reason": deletion.reason,
                        "recorded_at": deletion.recorded_at.isoformat()},
            ))
        try:
            await store.delete_recording(deletion.session_id)
        except Exception:
            # Audited already; the bytes stay until the next run plans them again.
            log.exception("retention: could not delete the recording of session %s",
                          deletion.session_id)
            report.failed.append(deletion.session_id)
            continue
        report.deleted.append(deletion)
        report.used_after -= deletion.bytes
        log.info("retention: deleted the recording of session %s (%s, %d bytes)",
                 deletion.session_id, deletion.reason, deletion.bytes)
    if report.warning:
        log.warning("storage holds %d of %d bytes (%.0f %% of vod_storage_limit_gb)",
                    report.used_after, limit, 100 * report.used_after / max(limit, 1))
    return report
