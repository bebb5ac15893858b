"""The JSON frames the chat WebSocket sends; the interface browser clients rely on."""

from __future__ import annotations

from typing import Any

from control.models import ChatMessage


class ChatRefusal(Exception):
    """A message the sender may not post; becomes an error frame to the sender only."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def message_frame(message: ChatMessage, username: str) -> dict[str, Any]:
    # The text goes out as JSON text, never as HTML: the page renders it with textContent.
    return {
        "type": "message",
        "id": message.id,
        "user": {"id": message.user_id, "username": username},
        "text": message.text,
        "sent_at": message.sent_at,
    }


def deleted_frame(message_id: int) -> dict[str, Any]:
    return {"type": "deleted", "id": message_id}


def error_frame(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}
