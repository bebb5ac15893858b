"""Mail over SMTP (aiosmtplib): a plain, short text per notification, with an unsubscribe
link in the body and in the List-Unsubscribe headers (RFC 8058 one-click)."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import quote, unquote, urlsplit

import aiosmtplib

from control.notifications.messages import render
from control.notifications.outbox import Claimed, Outcome

__all__ = ["MailSender", "build_mail"]

SEND_TIMEOUT = 30.0


def build_mail(
    claimed: Claimed, *, sender: str, public_url: str, unsubscribe_token: str
) -> EmailMessage:
    message = render(claimed.kind, claimed.data, public_url)
    unsubscribe = f"{public_url}/unsubscribe?token={quote(unsubscribe_token)}"
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = claimed.email
    mail["Subject"] = message.title
    mail["Date"] = formatdate(localtime=False)
    # The same id on every try: a receiving server may drop a duplicate.
    domain = urlsplit(public_url).hostname or "localhost"
    mail["Message-ID"] = f"<{claimed.message_id}@{domain}>"
    mail["List-Unsubscribe"] = (
        f"<{public_url}/mail/unsubscribe?token={quote(unsubscribe_token)}>"
    )
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["X-Academia-Event"] = claimed.kind
    mail.set_content(f"{message.body}\n\n--\nStop these mails: {unsubscribe}\n")
    return mail


class MailSender:
    """Sends through the server named by `smtp_url` (smtp:// with STARTTLS when offered,
    smtps:// with TLS from the start)."""

    def __init__(self, smtp_url: str) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("smtp_url must look like smtp://user:password@host:port")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None

    async def send(self, mail: EmailMessage) -> Outcome:
        started = time.monotonic()
        try:
            await aiosmtplib.send(
                mail, hostname=self._host, port=self._port, username=self._user,
                password=self._password, use_tls=self._tls, timeout=SEND_TIMEOUT,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500],
                           duration_ms=int((time.monotonic() - started) * 1000))
        return Outcome(ok=True, duration_ms=int((time.monotonic() - started) * 1000))
