"""The control plane's tables, one module each; importing this package registers them all."""

from control.models.attendance import AttendanceInterval
from control.models.audit import AuditEntry
from control.models.auth_token import AuthToken
from control.models.base import Base
from control.models.calendar_feed import CalendarFeed
from control.models.category import Category
from control.models.chat import ChatBan, ChatMessage, ChatMute
from control.models.chat_ticket import ChatTicket
from control.models.course import AccessLevel, ChatMode, Course, course_prerequisites
from control.models.course_resource import CourseResource
from control.models.enrollment import Enrollment, EnrollmentEvent, EnrollmentStatus
from control.models.invite import InviteCode
from control.models.media_node import MediaNodeRecord, MediaNodeSession
from control.models.notification import Notification, NotificationPreference
from control.models.notification_outbox import (
    Channel,
    DeliveryAttempt,
    DeliveryStatus,
    NotificationEvent,
    OutboxMessage,
)
from control.models.payment import Payment, PaymentKind
from control.models.recording_progress import RecordingProgress
from control.models.schedule import Schedule
from control.models.session import CourseSession, SessionStatus
from control.models.stream_key import StreamKey
from control.models.user import Role, User
from control.models.webhook import WebhookEndpoint

__all__ = [
    "AccessLevel",
    "AttendanceInterval",
    "AuditEntry",
    "AuthToken",
    "Base",
    "CalendarFeed",
    "Category",
    "Channel",
    "ChatBan",
    "ChatMessage",
    "ChatMode",
    "ChatMute",
    "ChatTicket",
    "Course",
    "CourseResource",
    "CourseSession",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Enrollment",
    "EnrollmentEvent",
    "EnrollmentStatus",
    "InviteCode",
    "MediaNodeRecord",
    "MediaNodeSession",
    "Notification",
    "NotificationEvent",
    "NotificationPreference",
    "OutboxMessage",
    "Payment",
    "PaymentKind",
    "RecordingProgress",
    "Role",
    "Schedule",
    "SessionStatus",
    "StreamKey",
    "User",
    "WebhookEndpoint",
    "course_prerequisites",
]
