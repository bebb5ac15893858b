"""Everything the platform holds about one person, as one JSON document (GET /me/export).

Secrets are never in it: no password hash, no token or stream key hash, no key hint; a
sign-in token or stream key appears as its metadata (when made, until when, revoked).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import (
    AttendanceInterval,
    AuditEntry,
    AuthToken,
    ChatBan,
    ChatMessage,
    ChatMute,
    Course,
    CourseResource,
    Enrollment,
    EnrollmentEvent,
    Payment,
    StreamKey,
    User,
)

__all__ = ["EXPORT_VERSION", "personal_export"]

EXPORT_VERSION = 1


async def personal_export(db: AsyncSession, user: User) -> dict[str, Any]:
    uid = user.id
    enrollments = (await db.scalars(select(Enrollment).where(Enrollment.student_id == uid)
                                    .order_by(Enrollment.id))).all()
    enrollment_ids = [e.id for e in enrollments]
    events = (await db.scalars(select(EnrollmentEvent)
                               .where(EnrollmentEvent.enrollment_id.in_(enrollment_ids))
                               .order_by(EnrollmentEvent.id))).all() if enrollment_ids else []
    history: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        history.setdefault(event.enrollment_id, []).append({
            "from_status": event.from_status.value if event.from_status else None,
            "to_status": event.to_status.value, "actor_id": event.actor_id,
            "reason": event.reason, "at": event.at})
    payments = (await db.scalars(select(Payment).where(Payment.enrollment_id.in_(
        enrollment_ids)).order_by(Payment.id))).all() if enrollment_ids else []
    course_ids = sorted({e.course_id for e in enrollments})
    titles: dict[int, str] = {
        cid: title for cid, title in (await db.execute(
            select(Course.id, Course.title).where(Course.id.in_(course_ids)))).all()
    } if course_ids else {}
    attendance = (await db.scalars(select(AttendanceInterval)
                                   .where(AttendanceInterval.user_id == uid)
                                   .order_by(AttendanceInterval.id))).all()
    messages = (await db.scalars(select(ChatMessage).where(ChatMessage.user_id == uid)
                                 .order_by(ChatMessage.id))).all()
    bans = (await db.scalars(select(ChatBan).where(ChatBan.user_id == uid))).all()
    mutes = (await db.scalars(select(ChatMute).where(ChatMute.user_id == uid))).all()
    tokens = (await db.scalars(select(AuthToken).where(AuthToken.user_id == uid)
                               .order_by(AuthToken.id))).all()
    keys = (await db.scalars(select(StreamKey).where(StreamKey.created_by == uid)
                             .order_by(StreamKey.id))).all()
    uploads = (await db.scalars(select(CourseResource).where(CourseResource.uploaded_by == uid)
                                .order_by(CourseResource.id))).all()
    taught = (await db.scalars(select(Course).where(Course.teacher_id == uid)
                               .order_by(Course.id))).all()
    # Entries they made, and the ones about their account or their enrollments (the path
    # names them: an approval, a removal).
    about = [AuditEntry.path.startswith(f"/users/{uid}/")]
    for eid in enrollment_ids:
        about += [AuditEntry.path == f"/enrollments/{eid}",
                  AuditEntry.path.startswith(f"/enrollments/{eid}/")]
    audit = (await db.scalars(select(AuditEntry).where(or_(
        AuditEntry.actor_id == uid, *about)).order_by(AuditEntry.id))).all()
    return {
        "export_version": EXPORT_VERSION,
        "profile": {"id": uid, "username": user.username, "role": user.role.value,
                    "email": user.email, "display_name": user.display_name,
                    "is_active": user.is_active, "created_at": user.created_at},
        "enrollments": [
            {"id": e.id, "course_id": e.course_id, "course_title": titles.get(e.course_id),
             "status": e.status.value, "paid": e.paid, "queued_at": e.queued_at,
             "created_at": e.created_at, "updated_at": e.updated_at,
             "history": history.get(e.id, [])}
            for e in enrollments],
        "payments": [
            {"id": p.id, "enrollment_id": p.enrollment_id, "kind": p.kind.value,
             "transaction_id": p.transaction_id, "amount_cents": p.amount_cents,
             "currency": p.currency, "received_at": p.received_at}
            for p in payments],
        "attendance": [
            {"session_id": a.session_id, "joined_at": a.joined_at,
             "last_seen_at": a.last_seen_at} for a in attendance],
        "chat_messages": [
            {"id": m.id, "session_id": m.session_id, "text": m.text, "sent_at": m.sent_at,
             "deleted_at": m.deleted_at} for m in messages],
        "chat_moderation": {
            "bans": [{"course_id": b.course_id, "created_at": b.created_at} for b in bans],
            "mutes": [{"course_id": m.course_id, "until": m.until,
                       "created_at": m.created_at} for m in mutes]},
        "courses_taught": [{"id": c.id, "title": c.title} for c in taught],
        "resources_uploaded": [
            {"id": r.id, "course_id": r.course_id, "session_id": r.session_id,
             "title": r.title, "filename": r.filename, "content_type": r.content_type,
             "size_bytes": r.size_bytes, "created_at": r.created_at} for r in uploads],
        "stream_keys": [
            {"id": k.id, "course_id": k.course_id, "label": k.label,
             "created_at": k.created_at, "rotated_at": k.rotated_at,
             "revoked_at": k.revoked_at, "expires_at": k.expires_at,
             "last_used_at": k.last_used_at} for k in keys],
        "sign_in_tokens": [
            {"created_at": t.created_at, "expires_at": t.expires_at,
             "revoked_at": t.revoked_at} for t in tokens],
        "audit": [
            {"id": a.id, "at": a.at, "actor_id": a.actor_id, "action": a.action,
             "method": a.method, "path": a.path, "status": a.status, "detail": a.detail}
            for a in audit],
    }
