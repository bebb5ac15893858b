"""The media edge's five questions over HTTP, one endpoint each (mediaserver/control_port.py).

Each answer maps 1:1 to the port's dataclasses; the rules are EdgeQuestions', shared with
the in-process adapter. A stream key or playback token travels in the body only, never in
a URL, so no access log keeps one.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from control.http.bodies import Body, Id
from control.http.responses import json, no_content
from control.node_api.routing import NodeCall, NodeRoutes
from control.streaming.edge_questions import PlaybackGrant
from control.streaming.stream_keys import PublishGrant

routes = NodeRoutes()


class PublishQuestion(Body):
    app: str = Field(max_length=200)
    key: str = Field(max_length=500)


class CourseQuestion(Body):
    course_id: Id


class GoLive(Body):
    course_id: Id
    # The media node asking (its cluster.node_name): it carries the session from now on.
    node: str | None = Field(default=None, min_length=1, max_length=100)


class EndNotice(Body):
    course_id: Id
    # The session the node ends, and the node: an end of another session, or from a node
    # the class has moved away from, ends nothing (control/streaming/edge_questions.py).
    session_id: Id | None = None
    node: str | None = Field(default=None, min_length=1, max_length=100)


class PlaybackQuestion(Body):
    session_id: Id
    token: str = Field(max_length=500)


class SessionNotice(Body):
    session_id: Id


@routes.route("/authorize-publish", name="node.authorize_publish", body=PublishQuestion,
              summary="May this key publish into this RTMP application?")
async def authorize_publish(call: NodeCall) -> web.StreamResponse:
    q = call.parsed(PublishQuestion)
    answer = await call.questions.authorize_publish(q.app, q.key)
    result: dict[str, Any]
    if isinstance(answer, PublishGrant):
        result = {"allowed": True, "course_id": answer.course_id, "key_id": answer.key_id}
    else:
        result = {"allowed": False, "reason": str(answer.reason)}
    return json(result)


@routes.route("/session-goes-live", name="node.session_goes_live", body=GoLive,
              summary="The course's broadcast began: its live session (new or joined)")
async def session_goes_live(call: NodeCall) -> web.StreamResponse:
    q = call.parsed(GoLive)
    return json({"session_id": await call.questions.session_goes_live(q.course_id, q.node)})


@routes.route("/end-session", name="node.end_session", body=EndNotice,
              summary="The course's broadcast is over: end its live session, if any")
async def end_session(call: NodeCall) -> web.StreamResponse:
    q = call.parsed(EndNotice)
    # "ended", "not_live" or "carried_elsewhere" (the node then lets the class go).
    return json({"outcome": await call.questions.end_session(q.course_id, q.session_id,
                                                             q.node)})


@routes.route("/authorize-playback", name="node.authorize_playback", body=PlaybackQuestion,
              summary="May this playback token play this session, live or recorded?")
async def authorize_playback(call: NodeCall) -> web.StreamResponse:
    q = call.parsed(PlaybackQuestion)
    answer = await call.questions.authorize_playback(q.session_id, q.token)
    result: dict[str, Any]
    if isinstance(answer, PlaybackGrant):
        result = {"allowed": True, "session_id": answer.session_id, "live": answer.live,
                  "expires_at": answer.expires_at.timestamp()}
    else:
        result = {"allowed": False, "reason": answer.reason}
    return json(result)


@routes.route("/recording-ready", name="node.recording_ready", body=SessionNotice,
              summary="The session's recording is stored: set its recording URL")
async def recording_ready(call: NodeCall) -> web.StreamResponse:
    await call.questions.recording_ready(call.parsed(SessionNotice).session_id)
    return no_content()
