"""The event kinds people and webhooks are told about; their names are the webhook
payload's "type" and what a webhook endpoint subscribes to."""

from __future__ import annotations

import enum

__all__ = ["ALL_EVENTS", "SUBSCRIBABLE", "EventKind"]


class EventKind(enum.StrEnum):
    ENROLMENT_ACTIVE = "enrolment.active"
    ENROLMENT_REQUESTED = "enrolment.requested"
    ENROLMENT_APPROVED = "enrolment.approved"
    ENROLMENT_REJECTED = "enrolment.rejected"
    ENROLMENT_WAITLISTED = "enrolment.waitlisted"
    ENROLMENT_PROMOTED = "enrolment.promoted"
    ENROLMENT_PAYMENT_CONFIRMED = "enrolment.payment_confirmed"
    ENROLMENT_REMOVED = "enrolment.removed"
    SESSION_REMINDER = "session.reminder"
    SESSION_LIVE = "session.live"
    SESSION_RECORDING_READY = "session.recording_ready"
    SESSION_MOVED = "session.moved"
    SESSION_CANCELLED = "session.cancelled"
    SCHEDULE_CHANGED = "schedule.changed"
    # Told to admins (in the app) when a webhook endpoint is disabled; never a webhook.
    WEBHOOK_DISABLED = "webhook.disabled"


# What a webhook endpoint may subscribe to: every kind but the admins' own report (a
# disabled endpoint is told to admins in the app, never to another endpoint); "*" is all.
SUBSCRIBABLE = sorted(k.value for k in EventKind if k != EventKind.WEBHOOK_DISABLED)
ALL_EVENTS = "*"
