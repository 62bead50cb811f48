"""One error body everywhere: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from comfygate.errors import ComfygateError, DatabaseBusy

log = logging.getLogger(__name__)


#: the longest string an error body carries: a message or detail that repeats what
#: the client sent (a name, a value) is cut, so a huge request never gets a huge answer
MAX_ECHO_CHARS = 1000
#: error details are our own small structures; deeper or longer than this is cut too
MAX_DETAIL_DEPTH = 6
#: a detail per refused field: 100 name enough of a body with a million bad fields
MAX_DETAIL_ITEMS = 100


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": _clip(message), "details": _bounded(details)}}


def _clip(text: str) -> str:
    if len(text) <= MAX_ECHO_CHARS:
        return text
    return f"{text[:MAX_ECHO_CHARS]}… ({len(text) - MAX_ECHO_CHARS} characters cut)"


def _bounded(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _clip(value)
    if depth >= MAX_DETAIL_DEPTH and isinstance(value, dict | list):
        return "…"
    if isinstance(value, dict):
        return {_clip(str(k)): _bounded(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v, depth + 1) for v in value[:MAX_DETAIL_ITEMS]]
    return value


def _pointer(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(ComfygateError)
    async def _domain(request: Request, exc: ComfygateError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            exc.status_code,
            headers={**exc.extra_headers, **exc.headers},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "path": _pointer(tuple(e.get("loc", ()))),
                "message": e.get("msg", "invalid"),
                "keyword": e.get("type", "invalid"),
            }
            for e in exc.errors()
        ]
        return JSONResponse(error_body("invalid_request", "the request is invalid", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path; RFC 9110 wants all.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(DatabaseBusy)
    async def _busy(request: Request, exc: DatabaseBusy) -> JSONResponse:
        return JSONResponse(
            error_body("database_busy", "the database is busy; retry shortly"),
            503,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "internal error"), 500)
