"""Request dependencies: the gateway and the principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from comfygate.api.admin.credentials import admin_principal
from comfygate.api.render import Renderer
from comfygate.errors import ComfygateError
from comfygate.limiting.address import client_address
from comfygate.principal import LOCAL, Principal, visitor
from comfygate.tokens import Tokens
from comfygate.worker.tokens import PREFIX as WORKER_PREFIX

if TYPE_CHECKING:
    from comfygate.gateway import Gateway

#: the signed cookie that carries a browser's visitor id
VISITOR_COOKIE = "comfygate_visitor"


class InvalidCredentials(ComfygateError):
    """The visitor cookie is not valid here; reload the page for a new one."""

    code = "invalid_credentials"
    status_code = 401


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
    if raw is None:
        return None
    visitor_id = tokens(request).visitor_id(raw)
    if visitor_id is None:
        # Falling back to another principal would hand this browser someone else's jobs.
        raise InvalidCredentials
    return visitor(visitor_id)


async def current_principal(request: Request) -> Principal:
    """The one place a request becomes a Principal: the admin token (bearer, or the
    session cookie on admin paths) is the admin; a valid visitor cookie is that visitor;
    a worker token is that worker; no credentials at all is the local principal (curl
    and the CLI on the embedded gateway). API keys and signed-in users are resolved here later."""
    if (admin := admin_principal(request)) is not None:
        return admin
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret.strip().startswith(WORKER_PREFIX):
        token = await gateway_of(request).worker_tokens.resolve(secret.strip())
        if token is None:
            raise InvalidCredentials("the worker token is unknown or revoked")
        return token.principal()
    return _cookie_visitor(request) or LOCAL


def client_address_of(gw: Gateway, request: Request) -> str:
    """The caller's address, believing ``X-Forwarded-For`` only from trusted proxies."""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.getlist("x-forwarded-for"), gw.trusted_proxies)


async def page_visitor(request: Request) -> Principal | None:
    """For pages: the visitor the browser already is, or None when the page must
    issue a fresh visitor cookie (none yet, or one this gateway did not sign)."""
    try:
        return _cookie_visitor(request)
    except InvalidCredentials:
        return None
