"""Declared endpoints: one table that registers routes, runs each request in a
transaction with its caller resolved, writes the audit trail, and feeds OpenAPI.

Reads (safe methods, not audited) resolve their token through the process's token cache
(control/accounts/token_cache.py: other processes' revocations arrive through Redis at once,
or after its few seconds' lifetime without Redis);
writes always ask the database.

An endpoint may declare a `prepare` step: slow work (password hashing) that runs with the
caller resolved and the body parsed but before the transaction opens, so that it holds
neither the SQLite writer lock nor a database connection; its result is `ctx.prepared`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from control.accounts.auth_tokens import resolve_token, resolve_token_cached
from control.errors import ApiError, bad_request, forbidden, not_found, unauthorized
from control.http.bodies import INT_MAX, parse_body, parse_query
from control.http.state import STATE, AppState
from control.models import AuditEntry, Role, User

Handler = Callable[["Ctx"], Awaitable[web.StreamResponse]]
Prepare = Callable[["Before"], Awaitable[Any]]
M = TypeVar("M", bound=BaseModel)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI style: /courses/{course_id}
    name: str  # operation id, and the audit trail's action
    summary: str
    handler: Handler
    body: type[BaseModel] | None = None
    body_optional: bool = False  # an empty body means the model's defaults
    query: type[BaseModel] | None = None
    public: bool = False  # callable without signing in
    audit_read: bool = False  # a read worth auditing (student rosters)
    # Writes are audited, except the few so frequent and harmless that the log would drown
    # in them (a player's heartbeat every 30 s per viewer).
    audited: bool = True
    tag: str = ""
    prepare: Prepare | None = None  # run before the transaction (see the module's docstring)
    # A raw body the prepare step streams itself (a file upload), described in OpenAPI as
    # bytes; `body` stays None. Its value says what the bytes are.
    stream_body: str | None = None


@dataclass
class Ctx:
    """One request as a handler sees it."""

    request: web.Request
    state: AppState
    db: AsyncSession
    user: User | None
    endpoint: Endpoint
    body: BaseModel | None = None
    query: BaseModel | None = None
    audit_detail: dict[str, Any] = field(default_factory=dict)
    prepared: Any = None  # what the endpoint's prepare step returned
    # Run once the transaction has committed (telling the media edge a class ended).
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def param(self, name: str) -> int:
        # Route patterns only match digits, so int() cannot fail for declared ids; a number
        # too large for an id column names no row.
        value = int(self.request.match_info[name])
        if not 1 <= value <= INT_MAX:
            raise not_found(name.removesuffix("_id").replace("_", " "))
        return value

    def parsed(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    def parsed_query(self, model: type[M]) -> M:
        assert isinstance(self.query, model)
        return self.query

    @property
    def me(self) -> User:
        if self.user is None:
            raise unauthorized()
        return self.user

    def require_role(self, *roles: Role) -> User:
        user = self.me
        if user.role not in roles:
            raise forbidden()
        return user


@dataclass
class Before:
    """One request as a prepare step sees it: no database session of its own."""

    request: web.Request
    state: AppState
    user: User | None
    body: BaseModel | None

    def parsed(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body

    def require_role(self, *roles: Role) -> User:
        if self.user is None:
            raise unauthorized()
        if self.user.role not in roles:
            raise forbidden()
        return self.user


class Routes:
    """Collects endpoints from the modules that declare them."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        name: str,
        summary: str,
        body: type[BaseModel] | None = None,
        body_optional: bool = False,
        query: type[BaseModel] | None = None,
        public: bool = False,
        audit_read: bool = False,
        audited: bool = True,
        prepare: Prepare | None = None,
        stream_body: str | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    name=name,
                    summary=summary,
                    handler=handler,
                    body=body,
                    body_optional=body_optional,
                    query=query,
                    public=public,
                    audit_read=audit_read,
                    audited=audited,
                    tag=self.tag,
                    prepare=prepare,
                    stream_body=stream_body,
                )
            )
            return handler

        return register


_ID_PARAM = re.compile(r"\{(\w+_id)\}")


def aiohttp_paths(path: str) -> list[str]:
    """The declared path (ids match digits only) and its trailing-slash twin."""
    pattern = _ID_PARAM.sub(r"{\1:\\d+}", path)
    twin = pattern[:-1] if pattern.endswith("/") else pattern + "/"
    return [pattern, twin]


def add_endpoints(app: web.Application, endpoints: list[Endpoint]) -> None:
    for endpoint in endpoints:
        handler = _runner(endpoint)
        for path in aiohttp_paths(endpoint.path):
            app.router.add_route(endpoint.method, path, handler, name=None)


async def _read_body(request: web.Request, endpoint: Endpoint) -> BaseModel | None:
    if endpoint.body is None:
        return None
    raw = await request.read()
    if not raw.strip():
        if endpoint.body_optional:
            return endpoint.body()
        raise bad_request("this call needs a JSON body", "missing_body")
    return parse_body(endpoint.body, raw)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if header:
            raise unauthorized("the Authorization header must be: Bearer <token>")
        return None
    return token.strip()


_INVALID_TOKEN = "the token is invalid, expired or revoked"


async def _known_caller(state: AppState, token: str | None, endpoint: Endpoint) -> User | None:
    """Who may call is settled before what they sent is looked at: 401 comes before 400/422.

    A token is checked through the cache, outside any write lock; the write transaction
    checks it again, authoritatively. The user found is who a prepare step works for.
    """
    if token is None:
        if not endpoint.public:
            raise unauthorized()
        return None
    if endpoint.body is None and endpoint.query is None and endpoint.prepare is None:
        return None  # nothing to parse or prepare first: the transaction resolves the token
    async with state.database.transaction(write=False) as db:
        user = await resolve_token_cached(db, state.database.token_cache, token)
    if user is None:
        raise unauthorized(_INVALID_TOKEN)
    return user


def _runner(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    write = endpoint.method not in SAFE_METHODS or endpoint.audit_read

    async def run(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        token = _bearer(request)
        caller = await _known_caller(state, token, endpoint)
        # Parse before taking the writer lock: a slow or bad body holds nothing up.
        body = await _read_body(request, endpoint)
        query = parse_query(endpoint.query, request.query) if endpoint.query else None
        prepared = None
        if endpoint.prepare is not None:
            prepared = await endpoint.prepare(Before(request, state, caller, body))
        async with state.database.transaction(write=write) as db:
            user = None
            if token:
                user = (
                    await resolve_token(db, token)
                    if write
                    else await resolve_token_cached(db, state.database.token_cache, token)
                )
            if token and user is None:
                raise unauthorized(_INVALID_TOKEN)
            if user is None and not endpoint.public:
                raise unauthorized()
            ctx = Ctx(request, state, db, user, endpoint, body=body, query=query,
                      prepared=prepared)
            response = await endpoint.handler(ctx)
            if write and endpoint.audited and response.status < 400:
                db.add(
                    AuditEntry(
                        actor_id=user.id if user else None,
                        action=endpoint.name,
                        method=request.method,
                        path=request.path,
                        status=response.status,
                        detail={**dict(request.match_info), **ctx.audit_detail},
                    )
                )
        for hook in ctx.after_commit:
            await hook()
        return response

    run.__name__ = endpoint.name.replace(".", "_")
    return run


__all__ = ["ApiError", "Ctx", "Endpoint", "Routes", "add_endpoints"]
