"""A real SMTP server in the test process (aiosmtpd, on its own thread): what the
platform mails arrives here, parsed, for tests to read."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class Mailbox:
    """Every message the server accepted, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self.url = ""

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._messages.append(parsed)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    box = Mailbox()
    # aiosmtpd checks it is up by connecting to its port, so it needs a real one: a free
    # port found by binding to 0 (nothing else takes it in the instant between).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        box.url = f"smtp://127.0.0.1:{port}"
        yield box
    finally:
        controller.stop()
