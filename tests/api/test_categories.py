"""Categories: the hierarchy, the active flag, and that only admins write."""

from __future__ import annotations

from sqlalchemy import func, select

from control.models import Category
from support.api_client import Api
from support.world import World


async def test_hierarchy_and_cycles(api: Api, world: World) -> None:
    child = await api.post("/categories/", world.admin,
                           json={"name": "Algebra", "parent_id": world.category_id}, expect=201)
    grandchild = await api.post("/categories/", world.admin,
                                json={"name": "Groups", "parent_id": child["id"]}, expect=201)
    out = await api.patch(f"/categories/{world.category_id}/", world.admin,
                          json={"parent_id": grandchild["id"]}, expect=422)
    assert "ancestor" in out["error"]["message"]
    await api.post("/categories/", world.admin, json={"name": "x", "parent_id": 999}, expect=422)
    children = await api.get(f"/categories/?parent_id={world.category_id}", expect=200)
    assert [c["name"] for c in children["results"]] == ["Algebra"]


async def test_inactive_categories_hidden_except_from_admins(api: Api, world: World) -> None:
    made = await api.post("/categories/", world.admin, json={"name": "Old", "is_active": False},
                          expect=201)
    public = await api.get("/categories/", world.student, expect=200)
    assert "Old" not in [c["name"] for c in public["results"]]
    await api.get(f"/categories/{made['id']}/", world.student, expect=404)
    admin = await api.get("/categories/?include_inactive=true", world.admin, expect=200)
    assert "Old" in [c["name"] for c in admin["results"]]


async def test_delete_refused_while_in_use(api: Api, world: World) -> None:
    out = await api.delete(f"/categories/{world.category_id}/", world.admin, expect=409)
    assert out["error"]["code"] == "category_in_use"
    spare = await api.post("/categories/", world.admin, json={"name": "Spare"}, expect=201)
    await api.delete(f"/categories/{spare['id']}/", world.admin, expect=204)
    await api.get(f"/categories/{spare['id']}/", world.admin, expect=404)


async def test_only_admins_write(api: Api, world: World) -> None:
    path = f"/categories/{world.category_id}/"
    for who in (world.teacher, world.student, None):
        expected = 401 if who is None else 403
        await api.post("/categories/", who, json={"name": "Nope"}, expect=expected)
        await api.put(path, who, json={"name": "Nope"}, expect=expected)
        await api.patch(path, who, json={"name": "Nope"}, expect=expected)
        await api.delete(path, who, expect=expected)
    async with api.database.transaction(write=False) as db:
        names = (await db.scalars(select(Category.name))).all()
        assert list(names) == ["Maths"]
        assert await db.scalar(select(func.count(Category.id))) == 1
