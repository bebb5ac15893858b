"""Webhook endpoints, for admins: the event kinds one may subscribe to; register one (URL
and event kinds; its signing secret is shown once), list, change or re-enable, delete, and
read its delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, field_validator
from sqlalchemy import select

from control.errors import not_found, unprocessable
from control.http.bodies import Body, Id, Query
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import (
    DeliveryAttempt,
    NotificationEvent,
    OutboxMessage,
    Role,
    WebhookEndpoint,
)
from control.notifications.address_guard import AddressRefused, allowed_networks
from control.notifications.kinds import ALL_EVENTS, SUBSCRIBABLE
from control.notifications.signing import new_secret
from control.notifications.webhooks import check_url

routes = Routes("webhooks")

# In the API description too, so clients (and schemathesis) know the names.
EventName = Annotated[str, WithJsonSchema({"type": "string", "enum": [*SUBSCRIBABLE, ALL_EVENTS]})]


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - {*SUBSCRIBABLE, ALL_EVENTS})
    if unknown:
        raise ValueError(f"unknown event kinds {unknown}; known: {SUBSCRIBABLE} or '*'")
    return sorted(set(events))


class WebhookBody(Body):
    url: str = Field(min_length=1, max_length=2000)
    events: list[EventName] = Field(min_length=1, max_length=len(SUBSCRIBABLE) + 1)

    @field_validator("events")
    @classmethod
    def known_events(cls, events: list[str]) -> list[str]:
        return _check_events(events)


class WebhookPatch(Body):
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[EventName] | None = Field(default=None, min_length=1)
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def known_events(cls, events: list[str] | None) -> list[str] | None:
        return None if events is None else _check_events(events)


class DeliveriesQuery(Query):
    before_id: Id | None = None
    limit: int = Field(default=50, ge=1, le=200)


def webhook_json(endpoint: WebhookEndpoint, *, secret: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "consecutive_failures": endpoint.consecutive_failures,
        "disabled_at": endpoint.disabled_at,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at,
    }
    if secret:
        shown["secret"] = endpoint.secret
    return shown


def _checked_url(ctx: Ctx, url: str) -> str:
    allowed = allowed_networks(ctx.state.settings.notifications.webhook_allowed_networks)
    try:
        check_url(url, allowed)
    except (AddressRefused, ValueError) as exc:
        raise unprocessable(str(exc), "url_refused") from None
    return url


async def _endpoint(ctx: Ctx) -> WebhookEndpoint:
    ctx.require_role(Role.ADMIN)
    endpoint = await ctx.db.get(WebhookEndpoint, ctx.param("webhook_id"))
    if endpoint is None:
        raise not_found("webhook")
    return endpoint


@routes.route("POST", "/webhooks", name="webhooks.create", body=WebhookBody,
              summary="Register a webhook endpoint (admin): {url, events}; answers its"
              " signing secret (whsec_...) this once")
async def create(ctx: Ctx) -> Any:
    me = ctx.require_role(Role.ADMIN)
    body = ctx.parsed(WebhookBody)
    endpoint = WebhookEndpoint(url=_checked_url(ctx, body.url), events=body.events,
                               secret=new_secret(), enabled=True, consecutive_failures=0,
                               disabled_reason="", created_by=me.id)
    ctx.db.add(endpoint)
    await ctx.db.flush()
    ctx.audit_detail["webhook_id"] = endpoint.id
    return json(webhook_json(endpoint, secret=True), status=201)


@routes.route("GET", "/webhooks", name="webhooks.list",
              summary="The webhook endpoints (admin), with whether each is enabled")
async def list_webhooks(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    rows = (await ctx.db.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))).all()
    return json({"results": [webhook_json(e) for e in rows]})


@routes.route("GET", "/webhooks/events", name="webhooks.events",
              summary="The event kinds a webhook endpoint may subscribe to (admin), and"
              " the name that stands for all of them")
async def event_kinds(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    return json({"results": SUBSCRIBABLE, "all": ALL_EVENTS})


@routes.route("PATCH", "/webhooks/{webhook_id}", name="webhooks.update", body=WebhookPatch,
              summary="Change a webhook endpoint (admin): {url?, events?, enabled?};"
              " enabling one again clears its failure count")
async def update_webhook(ctx: Ctx) -> Any:
    endpoint = await _endpoint(ctx)
    body = ctx.parsed(WebhookPatch)
    if body.url is not None:
        endpoint.url = _checked_url(ctx, body.url)
    if body.events is not None:
        endpoint.events = body.events
    if body.enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.consecutive_failures = 0
        endpoint.disabled_at = None
        endpoint.disabled_reason = ""
    elif body.enabled is False:
        endpoint.enabled = False
    return json(webhook_json(endpoint))


@routes.route("DELETE", "/webhooks/{webhook_id}", name="webhooks.delete",
              summary="Delete a webhook endpoint and its delivery log (admin)")
async def delete_webhook(ctx: Ctx) -> Any:
    endpoint = await _endpoint(ctx)
    await ctx.db.delete(endpoint)
    return no_content()


@routes.route("GET", "/webhooks/{webhook_id}/deliveries", name="webhooks.deliveries",
              query=DeliveriesQuery,
              summary="A webhook endpoint's delivery log, newest first (admin): each"
              " delivery's status and every attempt")
async def deliveries(ctx: Ctx) -> Any:
    endpoint = await _endpoint(ctx)
    q = ctx.parsed_query(DeliveriesQuery)
    stmt = select(OutboxMessage).where(OutboxMessage.webhook_id == endpoint.id)
    if q.before_id is not None:
        stmt = stmt.where(OutboxMessage.id < q.before_id)
    rows = (await ctx.db.scalars(stmt.order_by(OutboxMessage.id.desc()).limit(q.limit))).all()
    attempts: dict[int, list[dict[str, Any]]] = {row.id: [] for row in rows}
    if rows:
        found = await ctx.db.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.outbox_id.in_(list(attempts)))
            .order_by(DeliveryAttempt.id)
        )
        for attempt in found:
            attempts[attempt.outbox_id].append({
                "at": attempt.at, "ok": attempt.ok, "status_code": attempt.status_code,
                "error": attempt.error, "duration_ms": attempt.duration_ms,
            })
    kinds = await _kinds(ctx, [row.event_id for row in rows])
    return json({"results": [
        {"id": row.id, "message_id": row.message_id, "event": kinds.get(row.event_id),
         "status": row.status.value, "attempts": attempts[row.id],
         "next_attempt_at": row.next_attempt_at if row.status.value == "pending" else None,
         "last_error": row.last_error, "sent_at": row.sent_at, "created_at": row.created_at}
        for row in rows
    ]})


async def _kinds(ctx: Ctx, event_ids: list[int]) -> dict[int, str]:
    if not event_ids:
        return {}
    found = await ctx.db.execute(
        select(NotificationEvent.id, NotificationEvent.kind)
        .where(NotificationEvent.id.in_(event_ids))
    )
    return {event_id: kind for event_id, kind in found.all()}
