"""Request dependencies: the gateway and the principal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from comfygate.api.admin.credentials import admin_principal
from comfygate.api.render import Renderer
from comfygate.principal import LOCAL, Principal

if TYPE_CHECKING:
    from comfygate.gateway import Gateway


# Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread.
async def gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def renderer(request: Request) -> Renderer:
    r: Renderer = request.app.state.renderer
    return r


async def current_principal(request: Request) -> Principal:
    """The one place a request becomes a Principal. Visitors, API keys and signed-in
    users are resolved here later; routes never look at credentials themselves."""
    if (admin := admin_principal(request)) is not None:
        return admin
    return LOCAL
