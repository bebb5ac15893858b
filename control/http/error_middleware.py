"""The middleware that turns every failure into {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from control.errors import ApiError, bad_request

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


def validation_error(exc: ValidationError) -> ApiError:
    """Malformed JSON is a 400; well-formed JSON of the wrong shape is a 422."""
    problems = exc.errors(include_url=False, include_input=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return bad_request("the body is not valid JSON", "malformed_json")
    fields = []
    for p in problems:
        where = ".".join(str(part) for part in p["loc"]) or "body"
        fields.append({"field": where, "problem": p["msg"]})
    summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return ApiError(422, "invalid", summary, fields=fields)


_HTTP_CODES = {
    404: ("not_found", "no such route"),
    405: ("method_not_allowed", "this method is not allowed here"),
    413: ("body_too_large", "the request body is too large"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response
    except ValidationError as exc:
        err = validation_error(exc)
        return error_response(err.status, err.code, err.message, **err.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        response = error_response(exc.status, code, message)
        if "Allow" in exc.headers:  # a 405 names the methods the path does take (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal server error")
