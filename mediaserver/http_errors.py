"""The error body of the node's own HTTP resources (WHIP, HLS delivery, /metrics).

The same shape as the API's (control/errors.py): `{"error": {"code", "message"}}` with
the right status. Written here, not imported from control.api, because the media edge
depends on the control plane only through `ControlPort` (the composition root aside).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["error_response"]


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)
