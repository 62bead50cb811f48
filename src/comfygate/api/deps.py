"""Request dependencies: the gateway and the principal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from comfygate.api import csrf
from comfygate.api.admin.credentials import admin_principal, bearer, cookie_admin
from comfygate.api.render import Renderer
from comfygate.errors import ComfygateError, Forbidden, Unauthorized
from comfygate.limiting.address import client_address
from comfygate.principal import LOCAL, Principal, visitor
from comfygate.tokens import Tokens
from comfygate.users import InvalidToken, looks_like_jwt

if TYPE_CHECKING:
    from comfygate.gateway import Gateway

#: the signed cookie that carries a browser's visitor id
VISITOR_COOKIE = "comfygate_visitor"


class InvalidCredentials(Unauthorized):
    """The visitor cookie is not valid here; reload the page for a new one."""

    code = "invalid_credentials"


@dataclass
class Attempt:
    """One credential being verified; the code that refuses an identified API key
    names it, so the failure counts against the key too."""

    key_id: str | None = None


@asynccontextmanager
async def sign_in_attempt(gw: Gateway, request: Request) -> AsyncIterator[Attempt]:
    """Verifying a credential the caller sent: refused at once (429) while its address
    has failed too often, and an Unauthorized raised inside counts as one failure."""
    address = client_address_of(gw, request)
    await gw.auth_failures.check(address)
    attempt = Attempt()
    try:
        yield attempt
    except Unauthorized:
        await gw.auth_failures.failed(address, attempt.key_id)
        raise


# Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread.
async def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def gateway_of(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def renderer(request: Request) -> Renderer:
    r: Renderer = request.app.state.renderer
    return r


def tokens(request: Request) -> Tokens:
    t: Tokens = request.app.state.tokens
    return t


def _cookie_visitor(request: Request) -> Principal | None:
    raw = request.cookies.get(VISITOR_COOKIE)
    if raw is None or not gateway_of(request).settings.public_site:
        return None
    visitor_id = tokens(request).visitor_id(raw)
    if visitor_id is None:
        # Falling back to another principal would hand this browser someone else's jobs.
        raise InvalidCredentials
    return visitor(visitor_id)


async def _bearer_principal(request: Request, credential: str, attempt: Attempt) -> Principal:
    """The admin token, an API key, or a JWT of the configured identity provider;
    anything else is a 401 (never a fall back to a weaker identity)."""
    if (admin := admin_principal(request)) is not None:
        return admin
    gw = gateway_of(request)
    key = await gw.api_keys.resolve(credential)
    if key is not None:
        return key.principal()
    if gw.users is not None and looks_like_jwt(credential):
        try:
            return await gw.users.resolve(credential)
        except InvalidToken as exc:
            raise InvalidCredentials(f"the token is not accepted: {exc}") from None
    attempt.key_id = await gw.api_keys.revoked_id(credential)
    raise InvalidCredentials("the API key is unknown or revoked")


async def current_principal(request: Request) -> Principal:
    """The one place a request becomes a Principal, strongest credential first: the admin
    token or an API key or a JWT (bearer); the admin session cookie (on admin paths); a
    visitor cookie. With none, a 401 — or, when the gateway allows anonymous use (the
    demo), the one local principal. Cookies count only with a CSRF proof on unsafe calls."""
    if (credential := bearer(request)) is not None:
        async with sign_in_attempt(gateway_of(request), request) as attempt:
            return await _bearer_principal(request, credential, attempt)
    who = await cookie_admin(request) or _cookie_visitor(request)
    if who is not None:
        csrf.check_cookie_request(request)
        return who
    if gateway_of(request).settings.allow_anonymous:
        csrf.check_anonymous_request(request)
        return LOCAL
    raise Unauthorized(
        "send Authorization: Bearer with an API key (comfygate keys create) "
        "or a signed-in user's token"
    )


Who = Annotated[Principal, Depends(current_principal)]


def scoped(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the principal, if it holds ``scope`` (or admin), else a 403."""

    async def check(who: Who) -> Principal:
        if not who.can(scope):
            raise Forbidden(f"this needs the {scope} scope")
        return who

    return check


#: reads a caller's own jobs, events and outputs
Reader = Annotated[Principal, Depends(scoped("jobs:read"))]
#: submits, cancels, deletes and shares jobs, and uploads
Writer = Annotated[Principal, Depends(scoped("jobs:write"))]


def client_address_of(gw: Gateway, request: Request) -> str:
    """The caller's address, believing ``X-Forwarded-For`` only from trusted proxies."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), gw.trusted_proxies)


@asynccontextmanager
async def counted_submission(
    gw: Gateway, principal: Principal, request: Request
) -> AsyncIterator[dict[str, str]]:
    """Count a submission (a submit or a retry) against the rate limits; yields the
    RateLimit headers for the answer, and adds them to a refusal raised inside."""
    headers = await gw.rate_limiter.hit(principal, client_address_of(gw, request))
    try:
        yield headers
    except ComfygateError as refused:
        refused.extra_headers.update(headers)
        raise


async def page_visitor(request: Request) -> Principal | None:
    """For pages: the visitor the browser already is, or None when the page must
    issue a fresh visitor cookie (none yet, or one this gateway did not sign)."""
    try:
        return _cookie_visitor(request)
    except InvalidCredentials:
        return None
