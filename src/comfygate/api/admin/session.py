"""Signing in to the admin API with the admin token, and out again."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from comfygate.api.admin.credentials import COOKIE, sessions
from comfygate.api.admin.guard import ERRORS, require_admin
from comfygate.api.deps import gateway_of, sign_in_attempt
from comfygate.errors import Unauthorized

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=1000, description="The admin token")


class SessionInfo(BaseModel):
    admin: bool = Field(description="Always true: without a session this is a 401")
    #: None when signed in with a bearer token
    expires_at: datetime | None = Field(description="When the session cookie stops working")


@router.post(
    "/session",
    status_code=204,
    response_class=Response,
    responses={401: {"description": "Wrong admin token"}},
)
async def sign_in(body: SignIn, request: Request) -> Response:
    """Exchange the admin token (or an API key with the admin scope) for an
    ``HttpOnly; SameSite=Strict`` session cookie."""
    auth = sessions(request)
    gw = gateway_of(request)
    key_id = None
    async with sign_in_attempt(gw, request) as attempt:
        if not auth.check_token(body.token):
            key = await gw.api_keys.resolve(body.token)
            if key is None or "admin" not in key.scopes:
                attempt.key_id = key.id if key else await gw.api_keys.revoked_id(body.token)
                raise Unauthorized("that is neither the admin token nor an admin key")
            # The session names the key, so revoking the key signs this session out.
            key_id = key.id
    session = auth.issue(key_id)
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        session.value,
        max_age=session.max_age_s,
        expires=session.expires_at,
        path="/",
        httponly=True,
        samesite="strict",
        # Plain http on loopback is the demo; behind TLS the cookie must not leak to http.
        secure=request.url.scheme == "https",
    )
    return response


@router.delete("/session", status_code=204, response_class=Response)
async def sign_out() -> Response:
    """Drop the session cookie. Needs no session, so a stale page can always sign out."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get(
    "/session",
    responses=ERRORS,
    dependencies=[Depends(require_admin)],
)
async def current_session(request: Request) -> SessionInfo:
    """Whether this browser is signed in; the dashboard asks before it shows anything."""
    cookie = request.cookies.get(COOKIE)
    expires = sessions(request).verify(cookie) if cookie else None
    return SessionInfo(admin=True, expires_at=expires)
