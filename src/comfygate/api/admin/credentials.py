"""Admin credentials on a request: the signed session cookie or the bearer token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from comfygate.principal import ADMIN, Principal

if TYPE_CHECKING:
    from comfygate.admin.session import AdminSessions

COOKIE = "comfygate_admin"
#: where the session cookie counts; elsewhere a signed-in operator browsing the visitor
#: pages stays their visitor self instead of acting as the admin
COOKIE_PATHS = ("/v1/admin", "/admin")


def sessions(request: Request) -> AdminSessions:
    s: AdminSessions = request.app.state.gateway.admin.sessions
    return s


def bearer(request: Request) -> str | None:
    """The credential of ``Authorization: Bearer``, or None without one."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


def admin_principal(request: Request) -> Principal | None:
    """The admin principal for the configured admin token sent as a bearer (the first
    admin key: it needs no row, so a fresh install can sign in), else None."""
    credential = bearer(request)
    if credential is not None and sessions(request).check_token(credential):
        return ADMIN
    return None


async def cookie_admin(request: Request) -> Principal | None:
    """The admin principal for a valid session cookie on the admin paths, else None. A
    session bought with an admin key lasts only while the key is live and still admin."""
    if not request.url.path.startswith(COOKIE_PATHS):
        return None
    cookie = request.cookies.get(COOKIE)
    claims = sessions(request).claims(cookie) if cookie else None
    if claims is None:
        return None
    if claims.key_id is None:
        return ADMIN
    key = await request.app.state.gateway.api_keys.live(claims.key_id)
    if key is None or "admin" not in key.scopes:
        return None
    principal: Principal = key.principal()
    return principal
