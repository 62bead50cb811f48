"""The visitor's pages. Each one makes sure the browser holds a visitor cookie: the
JavaScript on the page then talks to the public API as that visitor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from comfygate.api import csrf
from comfygate.api.deps import (
    VISITOR_COOKIE,
    gateway,
    gateway_of,
    page_visitor,
    renderer,
    tokens,
)
from comfygate.api.served_files import served_headers
from comfygate.api.workflows import describe
from comfygate.contracts import Workflow
from comfygate.gateway import Gateway
from comfygate.jobs.model import JobStatus
from comfygate.principal import Principal
from comfygate.web.form import build_form
from comfygate.web.templating import page

router = APIRouter(include_in_schema=False)

GW = Annotated[Gateway, Depends(gateway)]
Visitor = Annotated[Principal | None, Depends(page_visitor)]

#: a visitor keeps their jobs as long as their browser keeps the cookie
VISITOR_COOKIE_MAX_AGE_S = 400 * 24 * 3600
EXAMPLE_PICTURE = "example.png"


def _with_visitor(request: Request, response: Response, visitor: Principal | None) -> Response:
    """The page's cookies: the CSRF token its scripts echo, and a visitor identity when
    the operator opened the public site (else the API answers these scripts only with
    ``allow_anonymous``)."""
    csrf.ensure_cookie(request, response)
    if visitor is None and gateway_of(request).settings.public_site:
        t = tokens(request)
        response.set_cookie(
            VISITOR_COOKIE,
            t.visitor_cookie(t.new_visitor_id()),
            max_age=VISITOR_COOKIE_MAX_AGE_S,
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    return response


def _workflow_summaries(gw: Gateway) -> list[dict[str, Any]]:
    return [
        {
            "name": wf.name,
            "title": wf.title,
            "description": wf.description,
            "available": gw.pool_available(wf.pool),
            "example": (wf.path / EXAMPLE_PICTURE).is_file(),
        }
        for wf in sorted(gw.workflows.values(), key=lambda w: w.title.lower())
    ]


def _titles(gw: Gateway) -> dict[str, str]:
    return {wf.name: wf.title for wf in gw.workflows.values()}


def _settings(wf: Workflow | None, params: dict[str, Any]) -> list[tuple[str, str]]:
    """A job's parameters as a reader sees them: titled, in contract order."""
    known = wf.parameters if wf else {}
    order = [n for n in known if n in params] + sorted(n for n in params if n not in known)
    rows = []
    for name in order:
        param = known.get(name)
        title = str(param.schema.get("title", name)) if param else name
        value = "an uploaded picture" if param and param.kind == "image" else params[name]
        if isinstance(value, bool):
            value = "yes" if value else "no"
        rows.append((title, str(value)))
    return rows


def not_found(request: Request, message: str) -> HTMLResponse:
    return page(request, "404.html", {"message": message}, status_code=404)


def _closed(request: Request, gw: Gateway) -> HTMLResponse | None:
    """With neither the public site nor anonymous use, a page's scripts could not call
    the API: say so instead of drawing a form that cannot run."""
    if gw.settings.public_site or gw.settings.allow_anonymous:
        return None
    return not_found(request, "This site is not open to the public.")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, gw: GW, visitor: Visitor) -> Response:
    if (closed := _closed(request, gw)) is not None:
        return closed
    response = page(
        request,
        "index.html",
        {"workflows": _workflow_summaries(gw), "page_data": {"titles": _titles(gw)}},
    )
    return _with_visitor(request, response, visitor)


def _workflow(gw: Gateway, name: str) -> Workflow | None:
    return gw.workflows.get(name)


@router.get("/w/{name}", response_class=HTMLResponse)
async def workflow_page(name: str, request: Request, gw: GW, visitor: Visitor) -> Response:
    if (closed := _closed(request, gw)) is not None:
        return closed
    wf = _workflow(gw, name)
    if wf is None:
        return not_found(request, f"There is no workflow called “{name}”.")
    info = describe(gw, wf)
    accept = ",".join(f"image/{f.lower()}" for f in gw.settings.uploads.formats)
    response = page(
        request,
        "workflow.html",
        {
            "wf": info,
            "fields": build_form(wf),
            "accept": accept,
            "formats": ", ".join(f.upper() for f in gw.settings.uploads.formats),
            "has_example": (wf.path / EXAMPLE_PICTURE).is_file(),
            "page_data": {
                "workflow": wf.name,
                "titles": _titles(gw),
                "examples": info["examples"],
            },
        },
    )
    return _with_visitor(request, response, visitor)


@router.get("/w/{name}/example.png")
async def example_picture(name: str, request: Request, gw: GW) -> Response:
    """Only the picture shipped in the workflow's folder: never a job's output."""
    wf = _workflow(gw, name)
    path = wf.path / EXAMPLE_PICTURE if wf else None
    if path is None or not path.is_file():
        return not_found(request, "This workflow has no example picture.")
    headers = {"Cache-Control": "max-age=3600", **served_headers(EXAMPLE_PICTURE, "image/png")}
    return FileResponse(path, media_type="image/png", headers=headers)


@router.get("/s/{token}", response_class=HTMLResponse)
async def shared_job(token: str, request: Request, gw: GW, visitor: Visitor) -> Response:
    """A job, read-only, for whoever holds its share link (no visitor check)."""
    share_id = tokens(request).share_id(token)
    link = await gw.shares.open(share_id) if share_id else None
    job = await gw.store.get_job(link.job_id) if link else None
    if job is None:
        return not_found(request, "This link does not open anything. Check that it is complete.")
    wf = gw.workflows.get(job.workflow)
    rendered = renderer(request).job(job)
    response = page(
        request,
        "share.html",
        {
            "job": rendered,
            "settings": _settings(wf, job.params),
            "title": wf.title if wf else job.workflow,
            "workflow_exists": wf is not None,
            "live": job.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELING),
        },
    )
    return _with_visitor(request, response, visitor)
