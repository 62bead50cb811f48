from __future__ import annotations

import pytest

from comfygate.api.admin.guard import require_admin
from comfygate.errors import Forbidden, Unauthorized
from comfygate.principal import ADMIN, LOCAL, Principal


async def test_admin_passes() -> None:
    assert await require_admin(ADMIN) is ADMIN


@pytest.mark.parametrize(
    "who",
    [LOCAL, Principal(id="v1", kind="visitor", scopes=frozenset({"jobs:read", "jobs:write"}))],
)
async def test_nobody_signed_in_is_a_401(who: Principal) -> None:
    assert not LOCAL.can("admin")
    with pytest.raises(Unauthorized):
        await require_admin(who)


async def test_a_key_without_the_admin_scope_is_a_403() -> None:
    with pytest.raises(Forbidden):
        await require_admin(Principal(id="k1", kind="key", scopes=frozenset({"jobs:read"})))
