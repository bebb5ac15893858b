"""What each event says to a person: a short title and a plain body naming the course,
the time (ISO 8601 with its zone) and a link. The same words serve the app and mail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.notifications.kinds import EventKind

__all__ = ["Message", "render"]

K = EventKind


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    link: str  # absolute when a public URL is given, else the path


_TITLES: dict[str, str] = {
    K.ENROLMENT_ACTIVE: "You are enrolled in {course}",
    K.ENROLMENT_REQUESTED: "Your request to join {course} was received",
    K.ENROLMENT_APPROVED: "Your place in {course} was approved",
    K.ENROLMENT_REJECTED: "Your request to join {course} was declined",
    K.ENROLMENT_WAITLISTED: "You are on the waiting list of {course}",
    K.ENROLMENT_PROMOTED: "A place in {course} is yours",
    K.ENROLMENT_PAYMENT_CONFIRMED: "Your payment for {course} is confirmed",
    K.ENROLMENT_REMOVED: "You are no longer enrolled in {course}",
    K.SESSION_REMINDER: "{course}: {session} starts soon",
    K.SESSION_LIVE: "{course} is live now",
    K.SESSION_RECORDING_READY: "{course}: the recording of {session} is ready",
    K.SESSION_MOVED: "{course}: {session} was moved",
    K.SESSION_CANCELLED: "{course}: {session} was cancelled",
    K.SCHEDULE_CHANGED: "{course}: the schedule changed",
    K.WEBHOOK_DISABLED: "A webhook endpoint was disabled",
}


def _lines(kind: str, data: dict[str, Any]) -> list[str]:
    course = data.get("course_title", "")
    lines = [f"Course: {course}"] if course else []
    if data.get("session_title"):
        lines.append(f"Class: {data['session_title']}")
    if kind == K.SESSION_MOVED and data.get("previous_start_time"):
        lines.append(f"Was: {data['previous_start_time']}")
    if data.get("start_time"):
        lines.append(f"Starts: {data['start_time']}")
    if kind == K.ENROLMENT_APPROVED and data.get("status") == "pending_payment":
        lines.append("Pay to take your place.")
    if data.get("status") and kind.startswith("enrolment."):
        lines.append(f"Status: {data['status']}")
    if kind == K.WEBHOOK_DISABLED:
        lines.append(f"{data.get('url', '')}: {data.get('reason', '')}")
    return lines


def render(kind: str, data: dict[str, Any], public_url: str = "") -> Message:
    template = _TITLES.get(kind, kind)
    title = template.format(
        course=data.get("course_title", ""), session=data.get("session_title", "a class")
    )
    path = str(data.get("link", ""))
    link = f"{public_url}{path}" if path.startswith("/") else path
    lines = _lines(kind, data)
    if link:
        lines.append(link)
    return Message(title=title[:300], body="\n".join(lines), link=link[:500])
