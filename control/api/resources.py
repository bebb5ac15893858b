"""Course resources: teachers attach files to a course or a session; whoever may see the
course's content lists them and downloads them through a short signed URL.

Uploads stream: the `prepare` step checks the caller (staff of the course, else 401/403
before a byte is read) and streams the body to storage through the `ResourceStore` port,
outside any transaction; the handler then records the row. Downloads are always
attachments, never rendered (see `_file_headers`).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from control.courses.permissions import require_staff, visible_course
from control.errors import ApiError, not_found
from control.http.bodies import Body, Query
from control.http.responses import json, no_content
from control.http.routing import Before, Ctx, Routes
from control.models import Course, CourseResource, CourseSession, User
from control.models.base import utcnow
from control.resources.access import may_see, refused, resource_refusal
from control.resources.download_tokens import issue_download, verify_download
from control.resources.filenames import content_disposition
from control.resources.resource_store import ResourceStore
from control.resources.uploading import MB, StoredFile, check_declared_length, store_upload

routes = Routes("resources")

_CHUNK = 64 * 1024
_UPLOAD = ("the file's bytes, streamed (any Content-Type: the type is read from the"
           " content); at most resource_max_mb")


class UploadQuery(Query):
    # Both optional, so that who may upload is settled (403) before what they named.
    title: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"\S")
    # The original name (the type still comes from the bytes); without one, "file.<ext>".
    filename: str = Field(default="file", min_length=1, max_length=255)


class ResourcePatch(Body):
    title: str = Field(min_length=1, max_length=200, pattern=r"\S")


class DownloadQuery(Query):
    token: str = Field(min_length=1, max_length=200)


def _store(state_store: ResourceStore | None) -> ResourceStore:
    if state_store is None:
        raise ApiError(503, "storage_unavailable", "this process has no access to storage")
    return state_store


def resource_json(row: CourseResource) -> dict[str, Any]:
    return {"id": row.id, "course_id": row.course_id, "session_id": row.session_id,
            "title": row.title, "filename": row.filename, "content_type": row.content_type,
            "size_bytes": row.size_bytes, "uploaded_by": row.uploaded_by,
            "created_at": row.created_at}


async def _upload(pre: Before, course_id: int) -> StoredFile:
    """Stream the body to storage once the caller is known to be the course's staff."""
    if pre.user is None:
        raise ApiError(401, "unauthorized", "sign in first: send Authorization: Bearer <token>")
    async with pre.state.database.transaction(write=False) as db:
        course = await visible_course(db, pre.user, course_id)
        require_staff(pre.user, course)
    store = _store(pre.state.resource_store)
    limit = pre.state.settings.storage.resource_max_mb * MB
    query = UploadQuery.model_validate(dict(pre.request.query))
    try:
        check_declared_length(pre.request.content_length, limit)
        with pre.state.upload_slots.hold(pre.user.id):
            return await store_upload(store, pre.request.content.iter_chunked(_CHUNK),
                                      course_id=course_id, filename=query.filename,
                                      limit_bytes=limit)
    except ApiError as exc:
        # The rest of the body is not wanted: the client should not send it, nor reuse
        # a connection it is still writing on.
        exc.headers["Connection"] = "close"
        raise


def _path_id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    if not 1 <= value <= 2**31 - 1:
        raise not_found(name.removesuffix("_id"))
    return value


async def _upload_to_course(pre: Before) -> StoredFile:
    return await _upload(pre, _path_id(pre.request, "course_id"))


async def _session_course(pre: Before) -> int:
    async with pre.state.database.transaction(write=False) as db:
        session = await db.get(CourseSession, _path_id(pre.request, "session_id"))
    if session is None:
        raise not_found("session")
    return session.course_id


async def _upload_to_session(pre: Before) -> StoredFile:
    return await _upload(pre, await _session_course(pre))


async def _record(ctx: Ctx, course_id: int, session_id: int | None) -> web.Response:
    """The row for the stored file; the file goes again if the row cannot be written."""
    stored: StoredFile = ctx.prepared
    try:
        course = await visible_course(ctx.db, ctx.me, course_id)
        require_staff(ctx.me, course)
        title = (ctx.parsed_query(UploadQuery).title or stored.filename).strip()[:200]
        row = CourseResource(course_id=course_id, session_id=session_id,
                             uploaded_by=ctx.me.id, title=title, filename=stored.filename,
                             content_type=stored.content_type, size_bytes=stored.size_bytes,
                             storage_key=stored.key)
        ctx.db.add(row)
        await ctx.db.flush()
    except BaseException:
        await _store(ctx.state.resource_store).delete(stored.key)
        raise
    ctx.audit_detail.update(resource_id=row.id, size_bytes=row.size_bytes,
                            content_type=row.content_type)
    return json(resource_json(row), status=201)


@routes.route("POST", "/courses/{course_id}/resources", name="resources.upload_course",
              query=UploadQuery, prepare=_upload_to_course, stream_body=_UPLOAD,
              summary="Attach a file to the course (its teacher, admins): 413 past"
              " resource_max_mb, 415 a type not accepted or not what its name says")
async def upload_to_course(ctx: Ctx) -> Any:
    return await _record(ctx, ctx.param("course_id"), None)


@routes.route("POST", "/sessions/{session_id}/resources", name="resources.upload_session",
              query=UploadQuery, prepare=_upload_to_session, stream_body=_UPLOAD,
              summary="Attach a file to a session (its course's teacher, admins); as for a"
              " course")
async def upload_to_session(ctx: Ctx) -> Any:
    session = await ctx.db.get(CourseSession, ctx.param("session_id"))
    if session is None:
        await _store(ctx.state.resource_store).delete(ctx.prepared.key)
        raise not_found("session")
    return await _record(ctx, session.course_id, session.id)


async def _visible_rows(ctx: Ctx, course: Course, rows: list[CourseResource]
                        ) -> list[CourseResource]:
    """The rows of sessions the caller may see (a session's files follow its rules)."""
    allowed: dict[int, bool] = {}
    kept = []
    for row in rows:
        if row.session_id is None:
            kept.append(row)
            continue
        if row.session_id not in allowed:
            session = await ctx.db.get(CourseSession, row.session_id)
            allowed[row.session_id] = session is not None and await resource_refusal(
                ctx.db, ctx.user, course, session) is None
        if allowed[row.session_id]:
            kept.append(row)
    return kept


@routes.route("GET", "/courses/{course_id}/resources", name="resources.list_course",
              public=True,
              summary="The course's files and its sessions' files the caller may see:"
              " staff, actively enrolled students, anyone for a public course")
async def list_for_course(ctx: Ctx) -> Any:
    course = await visible_course(ctx.db, ctx.user, ctx.param("course_id"))
    refusal = await resource_refusal(ctx.db, ctx.user, course, None)
    if refusal is not None:
        raise refused(refusal, ctx.user)
    rows = list((await ctx.db.scalars(
        select(CourseResource).where(CourseResource.course_id == course.id)
        .order_by(CourseResource.id))).all())
    return json({"results": [resource_json(r) for r in await _visible_rows(ctx, course, rows)]})


@routes.route("GET", "/sessions/{session_id}/resources", name="resources.list_session",
              public=True, summary="A session's files, for whoever may see the session")
async def list_for_session(ctx: Ctx) -> Any:
    session = await ctx.db.get(CourseSession, ctx.param("session_id"))
    if session is None:
        raise not_found("session")
    try:
        course = await visible_course(ctx.db, ctx.user, session.course_id)
    except ApiError:
        raise not_found("session") from None
    refusal = await resource_refusal(ctx.db, ctx.user, course, session)
    if refusal is not None:
        raise refused(refusal, ctx.user)
    rows = (await ctx.db.scalars(select(CourseResource).where(
        CourseResource.session_id == session.id).order_by(CourseResource.id))).all()
    return json({"results": [resource_json(r) for r in rows]})


async def _seen(ctx: Ctx) -> CourseResource:
    """The resource, if the caller may see it: else 404 (existence stays private)."""
    row = await ctx.db.get(CourseResource, ctx.param("resource_id"))
    if row is None or not await may_see(ctx.db, ctx.user, row):
        raise not_found("resource")
    return row


async def _managed(ctx: Ctx) -> CourseResource:
    row = await ctx.db.get(CourseResource, ctx.param("resource_id"))
    if row is None:
        raise not_found("resource")
    try:
        course = await visible_course(ctx.db, ctx.me, row.course_id)
    except ApiError:
        raise not_found("resource") from None
    require_staff(ctx.me, course)
    return row


@routes.route("GET", "/resources/{resource_id}/download-url", name="resources.download_url",
              public=True,
              summary="A signed download URL for the file, valid five minutes, for whoever"
              " may see it")
async def download_url(ctx: Ctx) -> Any:
    row = await _seen(ctx)
    token, expires_at = issue_download(ctx.state.playback_signer, row.id,
                                       ctx.user.id if ctx.user else None, utcnow())
    url = f"{ctx.state.settings.public_url}/resources/{row.id}/download?token={token}"
    return json({"url": url, "expires_at": expires_at, "filename": row.filename})


_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def _file_headers(row: CourseResource) -> dict[str, str]:
    # Never rendered by the browser: an attachment, its stored (never HTML) type not
    # sniffed, and a sandbox should anything still open it.
    return {"Content-Type": row.content_type,
            "Content-Disposition": content_disposition(row.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, no-store",
            "Accept-Ranges": "bytes"}


@routes.route("GET", "/resources/{resource_id}/download", name="resources.download",
              public=True, query=DownloadQuery,
              summary="The file, as an attachment, through a signed URL from download-url;"
              " 403 when the link is tampered, expired or for another file")
async def download(ctx: Ctx) -> Any:
    rid = ctx.param("resource_id")
    claim = verify_download(ctx.state.playback_signer, ctx.parsed_query(DownloadQuery).token,
                            rid, utcnow())
    row = await ctx.db.get(CourseResource, rid)
    if row is None:
        raise not_found("resource")
    # Whoever the link was given to must still see the file (a student removed since).
    user = await ctx.db.get(User, claim.user_id) if claim.user_id is not None else None
    if (claim.user_id is not None and user is None) or not await may_see(ctx.db, user, row):
        raise ApiError(403, "forbidden", "you may no longer see this file")
    store = _store(ctx.state.resource_store)
    headers = _file_headers(row)
    start, length, status = 0, row.size_bytes, 200
    wanted = _RANGE.fullmatch(ctx.request.headers.get("Range", "").strip())
    if wanted is not None and row.size_bytes > 0:
        first = int(wanted.group(1))
        last = min(int(wanted.group(2) or row.size_bytes - 1), row.size_bytes - 1)
        if first > last:
            error = ApiError(416, "range_not_satisfiable", "the range is outside the file")
            error.headers["Content-Range"] = f"bytes */{row.size_bytes}"
            raise error
        start, length, status = first, last - first + 1, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{row.size_bytes}"
    headers["Content-Length"] = str(length)
    # The bytes stream after the handler returns: the transaction is closed by then.
    return web.Response(status=status, headers=headers,
                        body=store.read(row.storage_key, start, length))


@routes.route("PATCH", "/resources/{resource_id}", name="resources.rename",
              body=ResourcePatch, summary="Change a file's title (the course's staff)")
async def rename(ctx: Ctx) -> Any:
    row = await _managed(ctx)
    row.title = ctx.parsed(ResourcePatch).title.strip()
    return json(resource_json(row))


@routes.route("DELETE", "/resources/{resource_id}", name="resources.delete",
              summary="Remove a file (the course's staff): its row, then its bytes")
async def delete(ctx: Ctx) -> Any:
    row = await _managed(ctx)
    store = _store(ctx.state.resource_store)
    ctx.audit_detail.update(resource_id=row.id, course_id=row.course_id,
                            session_id=row.session_id, title=row.title,
                            filename=row.filename, size_bytes=row.size_bytes)
    await ctx.db.delete(row)
    key = row.storage_key

    async def remove_file() -> None:
        await store.delete(key)

    # After the commit: a file whose row stays is never lost to a failed transaction.
    ctx.after_commit.append(remove_file)
    return no_content()
