"""The JSON error body of the media edge's own HTTP answers (WHIP, HLS delivery, /metrics).

The shape is the API's, `{"error": {"code", "message"}}`, so a client reads one kind of
error wherever it asked; the media edge builds it itself rather than reaching into the
control plane's HTTP layer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["error_response"]


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)
