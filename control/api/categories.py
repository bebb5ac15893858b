"""Course categories: anyone may browse the active ones; only admins write."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select

from control.errors import conflict, not_found, unprocessable
from control.http.bodies import Body, Id, Query
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import Category, Course, Role

routes = Routes("categories")


def category_json(category: Category) -> dict[str, Any]:
    return {
        "id": category.id,
        "name": category.name,
        "description": category.description,
        "parent_id": category.parent_id,
        "is_active": category.is_active,
        "created_at": category.created_at,
    }


class CategoryBody(Body):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=10_000)
    parent_id: Id | None = None
    is_active: bool = True


class CategoryPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=10_000)
    parent_id: Id | None = None
    is_active: bool | None = None


class CategoryQuery(Query):
    include_inactive: bool = False
    parent_id: Id | None = None


async def _category(ctx: Ctx) -> Category:
    category = await ctx.db.get(Category, ctx.param("category_id"))
    is_admin = ctx.user is not None and ctx.user.role == Role.ADMIN
    if category is None or (not category.is_active and not is_admin):
        raise not_found("category")
    return category


async def _check_parent(ctx: Ctx, category_id: int | None, parent_id: int | None) -> None:
    """The parent exists and the hierarchy stays a tree (no category its own ancestor)."""
    seen = {category_id} if category_id is not None else set()
    current = parent_id
    while current is not None:
        if current in seen:
            raise unprocessable("parent_id would make the category its own ancestor")
        seen.add(current)
        parent = await ctx.db.get(Category, current)
        if parent is None:
            raise unprocessable(f"parent category {current} does not exist")
        current = parent.parent_id


@routes.route("GET", "/categories/", name="categories.list", summary="List categories",
              query=CategoryQuery, public=True)
async def list_categories(ctx: Ctx) -> Any:
    q = ctx.parsed_query(CategoryQuery)
    stmt = select(Category).order_by(Category.name, Category.id)
    is_admin = ctx.user is not None and ctx.user.role == Role.ADMIN
    if not (q.include_inactive and is_admin):
        stmt = stmt.where(Category.is_active.is_(True))
    if q.parent_id is not None:
        stmt = stmt.where(Category.parent_id == q.parent_id)
    rows = (await ctx.db.scalars(stmt)).all()
    return json({"results": [category_json(c) for c in rows]})


@routes.route("POST", "/categories/", name="categories.create", summary="Create a category",
              body=CategoryBody)
async def create(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    body = ctx.parsed(CategoryBody)
    await _check_parent(ctx, None, body.parent_id)
    category = Category(**body.model_dump())
    ctx.db.add(category)
    await ctx.db.flush()
    return json(category_json(category), status=201)


@routes.route("GET", "/categories/{category_id}/", name="categories.get",
              summary="One category", public=True)
async def get(ctx: Ctx) -> Any:
    return json(category_json(await _category(ctx)))


async def _update(ctx: Ctx, values: dict[str, Any]) -> Any:
    ctx.require_role(Role.ADMIN)
    category = await _category(ctx)
    if "parent_id" in values:
        await _check_parent(ctx, category.id, values["parent_id"])
    for name, value in values.items():
        setattr(category, name, value)
    return json(category_json(category))


@routes.route("PUT", "/categories/{category_id}/", name="categories.replace",
              summary="Replace a category", body=CategoryBody)
async def replace(ctx: Ctx) -> Any:
    return await _update(ctx, ctx.parsed(CategoryBody).model_dump())


@routes.route("PATCH", "/categories/{category_id}/", name="categories.update",
              summary="Change some fields of a category", body=CategoryPatch)
async def update(ctx: Ctx) -> Any:
    values = ctx.parsed(CategoryPatch).model_dump(exclude_unset=True)
    # As in the other PATCHes, null leaves a field as it is; only a parent can be taken away.
    return await _update(
        ctx, {k: v for k, v in values.items() if v is not None or k == "parent_id"}
    )


@routes.route("DELETE", "/categories/{category_id}/", name="categories.delete",
              summary="Delete a category that no course or subcategory uses")
async def delete(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    category = await _category(ctx)
    used = await ctx.db.scalar(
        select(func.count(Course.id)).where(Course.category_id == category.id)
    )
    children = await ctx.db.scalar(
        select(func.count(Category.id)).where(Category.parent_id == category.id)
    )
    if used or children:
        raise conflict(
            "category_in_use",
            f"category {category.id} has {used} courses and {children} subcategories;"
            " move them or deactivate the category instead",
        )
    await ctx.db.delete(category)
    return no_content()
