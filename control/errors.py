"""Errors the control plane raises, each carrying the HTTP status and code it maps to."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere in a handler; the transaction is rolled back, nothing changes."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}  # sent with the error response (Retry-After)


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def unauthorized(message: str = "sign in first: send Authorization: Bearer <token>") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str = "you may not do this") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(409, code, message, **extra)


def unprocessable(message: str, code: str = "invalid") -> ApiError:
    return ApiError(422, code, message)


class RateLimited(ApiError):
    """429 with Retry-After: the caller must wait `retry_after` seconds."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(429, "rate_limited", message, retry_after=retry_after)
        self.headers["Retry-After"] = str(retry_after)
