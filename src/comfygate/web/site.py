"""Mounts the microsite on the gateway's app."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from comfygate.web import admin, pages
from comfygate.web.templating import STATIC_DIR


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        # Module imports carry no version in their URL: revalidate (ETag) on every load.
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    app.mount("/static", _Static(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(admin.router)
