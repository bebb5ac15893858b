"""GET /storage's document: what storage holds by kind, course and session, against the
limit, with the warning past 80 %."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from control.storage_policy.enforcement import limit_bytes
from control.storage_policy.facts import SessionFacts
from control.storage_policy.retention import WARNING_SHARE
from control.storage_policy.usage import KINDS, Usage

__all__ = ["storage_report"]


def storage_report(usage: Usage, facts: dict[int, SessionFacts], settings: Settings
                   ) -> dict[str, Any]:
    limit = limit_bytes(settings)
    total = usage.total
    courses: dict[int, dict[str, Any]] = {}
    unknown: list[dict[str, Any]] = []
    for session_id in sorted(usage.by_session):
        kinds = usage.by_session[session_id]
        entry: dict[str, Any] = {"session_id": session_id, "bytes": sum(kinds.values()),
                                 "by_kind": kinds}
        fact = facts.get(session_id)
        if fact is None:
            unknown.append(entry)  # stored, but the database has no such session any more
            continue
        entry.update(title=fact.title, status=fact.status.value)
        course = courses.setdefault(fact.course_id, {
            "course_id": fact.course_id, "title": fact.course_title,
            "retention_days": fact.retention_days, "bytes": 0,
            "by_kind": dict.fromkeys(KINDS, 0), "sessions": []})
        course["bytes"] += entry["bytes"]
        for kind, size in kinds.items():
            course["by_kind"][kind] += size
        course["sessions"].append(entry)
    share = total / limit if limit else 1.0
    warning = None
    if share >= WARNING_SHARE:
        warning = (f"storage holds {share:.0%} of vod_storage_limit_gb "
                   f"({settings.storage.vod_storage_limit_gb} GB): past the limit the "
                   "oldest recordings are deleted")
    return {
        "total_bytes": total,
        "limit_bytes": limit,
        "used_share": round(share, 4),
        "warning": warning,
        "by_kind": usage.by_kind,
        "courses": sorted(courses.values(), key=lambda c: -c["bytes"]),
        "unknown_sessions": unknown,
    }
