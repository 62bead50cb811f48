"""The ASGI app: routers, error bodies, and the gateway's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from comfygate import __version__, web
from comfygate.api import (
    errors,
    events,
    files,
    jobs,
    openapi,
    share,
    uploads,
    usage,
    webhooks,
    worker,
    worker_outputs,
    workflows,
)
from comfygate.api.admin.routes import ROUTERS as ADMIN_ROUTERS
from comfygate.api.body_limit import BodyLimit, BodyLimits
from comfygate.api.render import Renderer
from comfygate.gateway import Gateway
from comfygate.storage.signing import Signer
from comfygate.tokens import Tokens


def create_app(gw: Gateway, *, manage_lifetime: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifetime:
            await gw.start()
        try:
            yield
        finally:
            if manage_lifetime:
                await gw.stop()

    app = FastAPI(
        title="comfygate",
        version=__version__,
        description="Run ComfyUI workflows as jobs: submit, follow, fetch.",
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.state.media_origin = gw.storage.url_origin
    app.state.renderer = Renderer(gw.storage, gw.settings.url_ttl_s)
    app.state.tokens = Tokens(Signer(gw.settings.signing_key(), gw.clock))
    errors.install(app)
    workflows.add_submit_routes(app, gw.workflows)
    for module in (
        workflows,
        jobs,
        share,
        events,
        uploads,
        files,
        webhooks,
        usage,
        worker,
        worker_outputs,
    ):
        app.include_router(module.router)
    for router in ADMIN_ROUTERS:
        app.include_router(router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, object]:
        """The process answers. Also lists whether each backend's socket is up."""
        return {"ok": True, "backends": {a.backend: a.connected for a in gw.agents}}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Ready to take jobs: the database and storage answer, and every pool that a
        workflow uses has a live backend. 503 names what is missing."""
        checks = await gw.readiness()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)

    web.install(app)
    requests = gw.settings.requests
    # Inside CORS, so a browser may read the 413 too.
    app.add_middleware(
        BodyLimit,
        limits=BodyLimits(requests.max_body_bytes, requests.max_multipart_bytes),
    )
    if gw.settings.cors_origins:
        # Bearer keys only: without allow_credentials a browser sends no cookies along,
        # so another site can never act as a visitor or a signed-in operator.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=gw.settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "idempotency-key", "last-event-id"],
            expose_headers=["retry-after", "location"],
        )
    openapi.install(app, gw.uploads.limits)

    return app
