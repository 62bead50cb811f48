"""The ops dashboard's page: a server-rendered shell that ``static/js/admin.js`` fills
from the admin API. Every action it takes is a ``/v1/admin/…`` call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from comfygate.api import csrf
from comfygate.api.admin.credentials import cookie_admin
from comfygate.api.deps import gateway
from comfygate.gateway import Gateway
from comfygate.jobs.model import JobStatus
from comfygate.web.templating import page

router = APIRouter(include_in_schema=False)


async def signed_in(request: Request) -> bool:
    """Whether the browser holds a valid admin session cookie, bought with the token or
    a still live admin key (the page only decides which half to show first; the API
    checks every call on its own)."""
    return await cookie_admin(request) is not None


def pools(gw: Gateway) -> list[str]:
    names = {a.pool for a in gw.agents} | {b.pool for b in gw.settings.backends}
    return sorted(names | {w.pool for w in gw.workflows.values()})


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request, gw: Annotated[Gateway, Depends(gateway)]) -> HTMLResponse:
    response = page(
        request,
        "admin.html",
        {
            "signed_in": await signed_in(request),
            "statuses": [s.value for s in JobStatus],
            "workflows": sorted(gw.workflows.values(), key=lambda w: w.title.lower()),
            "pools": pools(gw),
            "page_data": {"titles": {w.name: w.title for w in gw.workflows.values()}},
        },
    )
    csrf.ensure_cookie(request, response)
    return response
