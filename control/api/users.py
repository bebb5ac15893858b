"""Signing in and out, self-registration, and account management by admins."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select

from control.accounts.auth_tokens import issue_token, revoke_all_for, revoke_token
from control.accounts.sign_in import (
    WRONG_CREDENTIALS,
    VerifiedPassword,
    new_account_hash,
    verify_credentials,
)
from control.accounts.user_accounts import add_user
from control.api.live_notice import notify_keys_revoked
from control.errors import ApiError, conflict, forbidden, not_found, unauthorized
from control.http.bodies import INT_MAX, Body, Query
from control.http.client_address import client_address
from control.http.responses import json, no_content
from control.http.routing import Before, Ctx, Routes
from control.models import Role, User
from control.models.base import utcnow
from control.streaming.key_revocation import revoke_keys_lost_by

routes = Routes("users")

USERNAME = Field(min_length=3, max_length=150, pattern=r"^[A-Za-z0-9_.@+-]+$")
PASSWORD = Field(min_length=8, max_length=256)


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role.value,
        "email": user.email,
        "display_name": user.display_name,
        "is_active": user.is_active,
        "created_at": user.created_at,
    }


class LoginBody(Body):
    username: str = Field(max_length=150)
    password: str = Field(max_length=256)


class RegisterBody(Body):
    username: str = USERNAME
    password: str = PASSWORD
    email: str = Field(default="", max_length=254)
    display_name: str = Field(default="", max_length=150)


class UserCreateBody(RegisterBody):
    role: Role


class UserUpdateBody(Body):
    role: Role | None = None
    email: str | None = Field(default=None, max_length=254)
    display_name: str | None = Field(default=None, max_length=150)
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)


class UserListQuery(Query):
    role: Role | None = None
    q: str | None = None
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=INT_MAX)


# Password work runs in each endpoint's prepare step: before the write transaction, off
# the event loop (control/accounts/sign_in.py). Only the writes are left to the handlers.


async def check_login(pre: Before) -> VerifiedPassword:
    body = pre.parsed(LoginBody)
    state = pre.state
    return await verify_credentials(
        state.database, state.passwords, state.sign_in_limits, state.dummy_password_hash,
        address=client_address(pre.request, state.trusted_proxies),
        username=body.username, password=body.password,
    )


@routes.route("POST", "/auth/login", name="auth.login", summary="Sign in", body=LoginBody,
              public=True, prepare=check_login)
async def login(ctx: Ctx) -> Any:
    verified: VerifiedPassword = ctx.prepared
    # Locked (PostgreSQL), so a password change or deactivation committing meanwhile is
    # either seen here or revokes the token issued here, never neither.
    user = await ctx.db.get(User, verified.user_id, with_for_update=True)
    # Deactivated, or the password changed, since it was checked: as if it had not matched.
    if user is None or not user.is_active or user.password_hash != verified.password_hash:
        raise unauthorized(WRONG_CREDENTIALS)
    token, row = await issue_token(ctx.db, user, ctx.state.settings.auth.token_ttl_seconds)
    ctx.audit_detail["user_id"] = user.id
    ctx.user = user
    return json({"token": token, "expires_at": row.expires_at, "user": user_json(user)})


@routes.route("POST", "/auth/logout", name="auth.logout", summary="Revoke this token")
async def logout(ctx: Ctx) -> Any:
    header = ctx.request.headers["Authorization"]
    await revoke_token(ctx.db, header.partition(" ")[2].strip())
    return no_content()


@routes.route("GET", "/auth/me", name="auth.me", summary="The signed-in user")
async def me(ctx: Ctx) -> Any:
    return json(user_json(ctx.me))


async def hash_registration(pre: Before) -> str:
    state = pre.state
    if not state.settings.auth.allow_self_registration:
        raise forbidden("self-registration is turned off on this server")
    body = pre.parsed(RegisterBody)
    return await new_account_hash(
        state.database, state.passwords, state.sign_in_limits,
        address=client_address(pre.request, state.trusted_proxies),
        username=body.username, password=body.password,
    )


@routes.route("POST", "/auth/register", name="auth.register", body=RegisterBody, public=True,
              summary="Create a student account (when settings allow self-registration)",
              prepare=hash_registration)
async def register(ctx: Ctx) -> Any:
    body = ctx.parsed(RegisterBody)
    user = await add_user(
        ctx.db, username=body.username, password_hash=ctx.prepared,
        role=Role.STUDENT, email=body.email, display_name=body.display_name,
    )
    ctx.user = user
    return json(user_json(user), status=201)


@routes.route("GET", "/users/", name="users.list", summary="List users (admin)",
              query=UserListQuery)
async def list_users(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    q = ctx.parsed_query(UserListQuery)
    stmt = select(User).order_by(User.id)
    if q.role:
        stmt = stmt.where(User.role == q.role)
    if q.q:
        stmt = stmt.where(User.username.contains(q.q, autoescape=True))
    total = await ctx.db.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (await ctx.db.scalars(stmt.limit(q.limit).offset(q.offset))).all()
    return json({"count": total, "results": [user_json(u) for u in rows]})


async def hash_new_user_password(pre: Before) -> str:
    pre.require_role(Role.ADMIN)  # nobody else may make the server hash
    return await pre.state.passwords.hash_off_loop(pre.parsed(UserCreateBody).password)


@routes.route("POST", "/users/", name="users.create", summary="Create a user (admin)",
              body=UserCreateBody, prepare=hash_new_user_password)
async def create(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    body = ctx.parsed(UserCreateBody)
    user = await add_user(
        ctx.db, username=body.username, password_hash=ctx.prepared,
        role=body.role, email=body.email, display_name=body.display_name,
    )
    return json(user_json(user), status=201)


async def _user_for_admin(ctx: Ctx) -> User:
    ctx.require_role(Role.ADMIN)
    user = await ctx.db.get(User, ctx.param("user_id"))
    if user is None:
        raise not_found("user")
    return user


@routes.route("GET", "/users/{user_id}/", name="users.get", summary="One user (admin, or self)")
async def get(ctx: Ctx) -> Any:
    if ctx.me.id == ctx.param("user_id"):
        return json(user_json(ctx.me))
    return json(user_json(await _user_for_admin(ctx)))


async def hash_changed_password(pre: Before) -> str | None:
    password = pre.parsed(UserUpdateBody).password
    if password is None:
        return None
    pre.require_role(Role.ADMIN)
    return await pre.state.passwords.hash_off_loop(password)


async def _revoke_lost_keys(ctx: Ctx, user: User) -> None:
    """Stream keys of courses the user may no longer manage stop working, and an encoder
    live on one is disconnected (once this commits)."""
    notify_keys_revoked(ctx, await revoke_keys_lost_by(ctx.db, user, now=utcnow()))


@routes.route("PATCH", "/users/{user_id}/", name="users.update", body=UserUpdateBody,
              summary="Change a user's role, details, password or active flag (admin)",
              prepare=hash_changed_password)
async def update(ctx: Ctx) -> Any:
    user = await _user_for_admin(ctx)
    body = ctx.parsed(UserUpdateBody)
    if user.erased_at is not None:
        # Reactivating or re-passwording would let an erased person sign in again.
        raise conflict("user_erased", "this person was erased; the account cannot change")
    if user.id == ctx.me.id and (
        (body.role is not None and body.role != Role.ADMIN) or body.is_active is False
    ):
        raise conflict("self_lockout", "an admin cannot demote or deactivate themself")
    for name in ("role", "email", "display_name", "is_active"):
        value = getattr(body, name)
        if value is not None:
            setattr(user, name, value)
    if ctx.prepared is not None:
        user.password_hash = ctx.prepared
    if body.password is not None or body.is_active is False:
        await revoke_all_for(ctx.db, user.id)
    if body.role is not None or body.is_active is False:
        await _revoke_lost_keys(ctx, user)
    return json(user_json(user))


@routes.route("DELETE", "/users/{user_id}/", name="users.deactivate",
              summary="Deactivate a user (admin); their history is kept")
async def deactivate(ctx: Ctx) -> Any:
    user = await _user_for_admin(ctx)
    if user.id == ctx.me.id:
        raise conflict("self_lockout", "an admin cannot deactivate themself")
    user.is_active = False
    await revoke_all_for(ctx.db, user.id)
    await _revoke_lost_keys(ctx, user)
    return no_content()


__all__ = ["ApiError", "routes", "user_json"]
