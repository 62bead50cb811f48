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


def admin_principal(request: Request) -> Principal | None:
    """The admin principal for a valid bearer token or session cookie, else None (the
    caller goes on resolving other kinds of credentials)."""
    auth = sessions(request)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and auth.check_token(credential.strip()):
        return ADMIN
    if request.url.path.startswith(COOKIE_PATHS):
        cookie = request.cookies.get(COOKIE)
        if cookie and auth.verify(cookie) is not None:
            return ADMIN
    return None
