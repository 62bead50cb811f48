"""Every admin route needs the ``admin`` scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from comfygate.api.deps import current_principal
from comfygate.errors import Forbidden, Unauthorized
from comfygate.principal import Principal

#: principals that stand for "nobody signed in"; they get a 401 rather than a 403
ANONYMOUS_KINDS = frozenset({"local", "visitor"})


async def require_admin(who: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if who.can("admin"):
        return who
    if who.kind in ANONYMOUS_KINDS:
        raise Unauthorized(
            "sign in with the admin token: POST /v1/admin/session, "
            "or send Authorization: Bearer <admin token>"
        )
    raise Forbidden("this needs the admin scope")


Admin = Annotated[Principal, Depends(require_admin)]

ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "No admin session or token"},
    403: {"description": "Signed in without the admin scope"},
}


def admin_router() -> APIRouter:
    """A router whose every route requires the admin scope."""
    return APIRouter(
        prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ERRORS
    )
