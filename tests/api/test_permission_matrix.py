"""Every endpoint x every role: a call the role may not make is refused (401 signed out,
403 not allowed, 404 where the thing is not theirs to see) and changes nothing at all.

The table (support/permission_table.py) must name every endpoint the app serves, so a new
endpoint cannot land without saying who may call it.
"""

from __future__ import annotations

import pytest

from control.app import all_endpoints
from control.models import Role
from support.api_client import Api
from support.permission_table import ALLOWED, EVERYONE, ROLES, build_scene, valid_body
from support.snapshot import snapshot
from support.world import World


def test_every_endpoint_is_in_the_table() -> None:
    served = {endpoint.name for endpoint in all_endpoints()}
    assert served == set(ALLOWED), "say in ALLOWED who may call each endpoint"


# One scene per endpoint, then every refused role in turn: nothing may change between them.
@pytest.mark.parametrize(
    "name",
    [e.name for e in all_endpoints() if ALLOWED.get(e.name, EVERYONE) != EVERYONE],
)
async def test_refused_and_nothing_changes(api: Api, world: World, name: str) -> None:
    scene = await build_scene(api, world)
    endpoint = next(e for e in all_endpoints() if e.name == name)
    path = endpoint.path.format(**scene.ids)
    before = await snapshot(api.database)
    for role in ROLES:
        if role in ALLOWED[name]:
            continue
        who = scene.people[role]
        out = await api.call(endpoint.method, path, who, json=valid_body(name, scene))
        status = api.last_status
        if who is None:
            assert status == 401, (name, out)
        else:
            assert status in (403, 404), (name, role, status, out)
        assert set(out) == {"error"} and {"code", "message"} <= set(out["error"])
        assert await snapshot(api.database) == before, f"{name} as {role} changed something"


async def test_roles_in_the_scene(api: Api, world: World) -> None:
    scene = await build_scene(api, world)
    roles = {k: p.user.role for k, p in scene.people.items() if p is not None}
    assert roles == {"admin": Role.ADMIN, "teacher": Role.TEACHER,
                     "other_teacher": Role.TEACHER, "student": Role.STUDENT,
                     "outsider": Role.STUDENT}
