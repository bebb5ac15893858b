"""Who may call each endpoint (the permission matrix's table), and a scene to call each one
in: the teacher's course with one of every kind of thing, and a valid body per endpoint.
Shared by test_permission_matrix and test_demoted_teacher."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from control.models import ChatMessage, CourseResource, Notification
from control.models.base import utcnow
from support.api_client import Api, Person
from support.world import World

ROLES = ("admin", "teacher", "other_teacher", "student", "outsider", "anonymous")
EVERYONE = frozenset(ROLES)
SIGNED_IN = EVERYONE - {"anonymous"}
STAFF = frozenset({"admin", "teacher"})  # the course's own teacher, and admins
ADMIN = frozenset({"admin"})
STUDENTS = frozenset({"student", "outsider"})

# Who may call each endpoint in the world built below; everyone else must be refused.
# Endpoints open to everyone (sign-in, the catalog) and the HMAC-signed payment webhook
# (tested in test_payments.py) have nobody to refuse.
ALLOWED: dict[str, frozenset[str]] = {
    "auth.login": EVERYONE,
    "auth.register": EVERYONE,
    "payments.webhook": EVERYONE,
    "auth.logout": SIGNED_IN,
    "auth.me": SIGNED_IN,
    "users.list": ADMIN,
    "users.create": ADMIN,
    "users.get": ADMIN,
    "users.update": ADMIN,
    "users.deactivate": ADMIN,
    "categories.list": EVERYONE,
    "categories.get": EVERYONE,
    "categories.create": ADMIN,
    "categories.replace": ADMIN,
    "categories.update": ADMIN,
    "categories.delete": ADMIN,
    "courses.list": EVERYONE,
    "courses.get": EVERYONE,
    "courses.create": frozenset({"admin", "teacher", "other_teacher"}),
    "courses.replace": STAFF,
    "courses.update": STAFF,
    "courses.delete": STAFF,
    "stream_keys.create": STAFF,
    "stream_keys.list": STAFF,
    "stream_keys.update": STAFF,
    "stream_keys.rotate": STAFF,
    "stream_keys.revoke": STAFF,
    "stream_keys.delete": STAFF,
    "audit.list": ADMIN,
    "nodes.list": ADMIN,
    "enrollments.enroll": STUDENTS,
    "enrollments.enroll_student": STAFF,
    "enrollments.remove_student": STAFF,
    "enrollments.roster": STAFF,
    "enrollments.mine": STUDENTS,
    "enrollments.get": STAFF | {"student"},
    "enrollments.history": STAFF | {"student"},
    "enrollments.approve": STAFF,
    "enrollments.reject": STAFF,
    "enrollments.complete": STAFF,
    "enrollments.withdraw": frozenset({"student"}),
    "invites.create": STAFF,
    "invites.list": STAFF,
    "invites.revoke": STAFF,
    "schedules.list": SIGNED_IN,
    "schedules.get": SIGNED_IN,
    "schedules.create": STAFF,
    "schedules.replace": STAFF,
    "schedules.update": STAFF,
    "schedules.delete": STAFF,
    "sessions.list": SIGNED_IN,
    "sessions.course_list": SIGNED_IN,
    "sessions.get": SIGNED_IN,
    "sessions.student_list": frozenset({"student"}),
    "sessions.create": STAFF,
    "sessions.replace": STAFF,
    "sessions.update": STAFF,
    "sessions.cancel": STAFF,
    "sessions.delete": STAFF,
    "live.start": STAFF,
    "live.end": STAFF,
    "live.status": EVERYONE,
    # The scene's course is public: anyone may ask to play its sessions (a session with
    # nothing to play answers 409); refusals on private courses are in test_playback.py.
    "playback.get": EVERYONE,
    "playback.recording": EVERYONE,
    # The scene's course and chat are public: anyone gets a ticket (anonymous readers
    # too); refusals on private and disabled chats are in test_chat.py.
    "chat.ticket": EVERYONE,
    "chat.presence": EVERYONE,
    "chat.delete_message": STAFF,
    "chat.bans": STAFF,
    "chat.ban": STAFF,
    "chat.unban": STAFF,
    "chat.mute": STAFF,
    "chat.settings": STAFF,
    # The scene's session is not live: signed-in callers get 409; only sign-in is checked.
    "attendance.heartbeat": SIGNED_IN,
    "attendance.report": STAFF,
    # Without storage in the test app an admin gets 503; refusals come before that.
    "storage.usage": ADMIN,
    "storage.retention": ADMIN,
    "privacy.export": SIGNED_IN,
    "privacy.erase": ADMIN,
    "calendars.mine": SIGNED_IN,
    "calendars.rotate": SIGNED_IN,
    "calendars.revoke": SIGNED_IN,
    # The secret in the URL is the credential (404 without the right one; test_calendars).
    "calendars.feed": EVERYONE,
    # The scene's course is public; a private course's feed is 404 (test_calendars).
    "calendars.course": EVERYONE,
    # The scene's course is public and its sessions have no recording: signed-in callers
    # get 409; refusals (not_enrolled, outside_access_window, locked_recording) are in
    # test_progress.py and test_access_rules.py.
    "progress.report": SIGNED_IN,
    "progress.get": SIGNED_IN,
    "progress.session_report": STAFF,
    "progress.completion": STAFF,
    "notifications.list": SIGNED_IN,
    # The scene's notification is the student's (their enrolment): anyone else gets 404.
    "notifications.read": frozenset({"student"}),
    "notifications.read_all": SIGNED_IN,
    "notifications.preferences": SIGNED_IN,
    "notifications.set_preferences": SIGNED_IN,
    # Signed by its token, like the payment webhook: refusals are in test_notifications.py.
    "notifications.unsubscribe": EVERYONE,
    "webhooks.create": ADMIN,
    "webhooks.list": ADMIN,
    "webhooks.events": ADMIN,
    "webhooks.update": ADMIN,
    "webhooks.delete": ADMIN,
    "webhooks.deliveries": ADMIN,
    # Without storage in the test app staff get 503 on uploads; refusals come first.
    "resources.upload_course": STAFF,
    "resources.upload_session": STAFF,
    # The scene's course is public: anyone lists its files and gets a link (refusals on
    # private courses, terms and locked recordings are in test_resources.py).
    "resources.list_course": EVERYONE,
    "resources.list_session": EVERYONE,
    "resources.download_url": EVERYONE,
    # The signed token in the URL is the credential (403 without it; test_resources.py).
    "resources.download": EVERYONE,
    "resources.rename": STAFF,
    "resources.delete": STAFF,
}


@dataclass
class Scene:
    world: World
    people: dict[str, Person | None]
    ids: dict[str, int]


async def build_scene(api: Api, world: World) -> Scene:
    """The teacher's course with one active student, and one of every kind of thing."""
    c = world.course_id
    enrollment = await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    key = await api.post(f"/courses/{c}/stream-keys", world.teacher, json={}, expect=201)
    invite = await api.post(f"/courses/{c}/invites", world.teacher, json={}, expect=201)
    schedule = await api.post("/schedules/", world.teacher, json={
        "course_id": c, "title": "Weekly", "start_time": "2031-03-03T09:00",
        "duration_minutes": 60, "timezone": "Europe/Paris", "rrule": "FREQ=WEEKLY;COUNT=3",
    }, expect=201)
    start = utcnow() + timedelta(days=3)
    session = await api.post("/sessions/", world.teacher, json={
        "course_id": c, "title": "One-off", "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat(),
    }, expect=201)
    async with api.database.transaction(write=True) as db:
        # A chat message to moderate (chat messages arrive over the WebSocket only).
        message = ChatMessage(session_id=session["id"], user_id=world.student.id, text="hi")
        db.add(message)
        await db.flush()
        message_id = message.id
        # The student's "you are enrolled" notification.
        notification_id = await db.scalar(
            select(Notification.id).where(Notification.user_id == world.student.id)
        )
        assert notification_id is not None
        # A course file (its bytes are not needed to be refused).
        resource = CourseResource(course_id=c, uploaded_by=world.teacher.id, title="Slides",
                                  filename="slides.pdf", content_type="application/pdf",
                                  size_bytes=1, storage_key=f"resources/{c}/scene.pdf")
        db.add(resource)
        await db.flush()
        resource_id = resource.id
    webhook = await api.post("/webhooks", world.admin, json={
        "url": "https://hooks.example.com/academia", "events": ["*"]}, expect=201)
    people: dict[str, Person | None] = {
        "admin": world.admin, "teacher": world.teacher, "other_teacher": world.other_teacher,
        "student": world.student, "outsider": world.student2, "anonymous": None,
    }
    return Scene(world, people, {
        "course_id": c, "enrollment_id": enrollment["id"], "key_id": key["id"],
        "invite_id": invite["id"], "schedule_id": schedule["id"], "session_id": session["id"],
        "category_id": world.category_id, "user_id": world.student3.id,
        "message_id": message_id, "notification_id": notification_id,
        "webhook_id": webhook["id"], "resource_id": resource_id,
    })


def valid_body(name: str, scene: Scene) -> Any:
    """A valid body for each writing endpoint, so a refusal is about who, not what."""
    w = scene.world
    start = utcnow() + timedelta(days=10)
    session_times = {"start_time": start.isoformat(),
                     "end_time": (start + timedelta(hours=1)).isoformat()}
    schedule = {"title": "Moved", "start_time": "2031-06-02T10:00", "duration_minutes": 60,
                "timezone": "Europe/Paris"}
    course = {"title": "Renamed", "category_id": w.category_id}
    return {
        "auth.logout": None,
        "users.create": {"username": "made", "password": "long-enough-pw", "role": "admin"},
        "users.update": {"role": "admin"},
        "categories.create": {"name": "New"},
        "categories.replace": {"name": "Renamed"},
        "categories.update": {"name": "Renamed"},
        "courses.create": course,
        "courses.replace": course,
        "courses.update": {"title": "Renamed"},
        "stream_keys.create": {},
        "stream_keys.update": {"label": "x"},
        "enrollments.enroll_student": {"student_id": w.student2.id},
        "enrollments.remove_student": {"student_id": w.student.id},
        "invites.create": {},
        "schedules.create": {**schedule, "course_id": w.course_id},
        "schedules.replace": {**schedule, "course_id": w.course_id},
        "schedules.update": {"title": "Moved"},
        "sessions.create": {**session_times, "course_id": w.course_id, "title": "Extra"},
        "sessions.replace": {**session_times, "title": "Moved"},
        "sessions.update": {"title": "Moved"},
        "chat.ban": {"user_id": w.student3.id},
        "chat.mute": {"user_id": w.student3.id, "minutes": 5},
        "chat.settings": {"slow_mode_seconds": 10},
        "storage.retention": {"retention_days": 30},
        "progress.report": {"position_seconds": 10, "duration_seconds": 100},
        "notifications.set_preferences": {"email": False},
        "webhooks.create": {"url": "https://hooks.example.com/more", "events": ["*"]},
        "webhooks.update": {"enabled": False},
        "resources.rename": {"title": "Renamed"},
    }.get(name)
