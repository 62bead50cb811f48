"""The Jinja environment and the headers every page carries."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from comfygate import __version__

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=HERE / "templates")


def page_headers(media_origin: str | None = None) -> dict[str, str]:
    """Pages load only our own scripts and styles; images may be blobs (upload
    previews). With S3 storage, images, videos and upload PUTs go to the bucket's
    origin, so that one is allowed too."""
    extra = f" {media_origin}" if media_origin else ""
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; img-src 'self' blob: data:{extra}; "
            f"media-src 'self' blob:{extra}; style-src 'self'; script-src 'self'; "
            f"connect-src 'self'{extra}; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        ),
        # Share links hold a token: never hand it to another site in a Referer.
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


PAGE_HEADERS = page_headers()


@cache
def _asset_version() -> str:
    """Changes whenever a static file does, so browsers never mix old and new scripts."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def static_url(path: str) -> str:
    return f"/static/{path}?v={_asset_version()}"


#: the words a visitor reads for each job status (the dock's JavaScript uses the same)
STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "canceling": "Stopping",
    "succeeded": "Done",
    "failed": "Failed",
    "canceled": "Canceled",
    "expired": "Expired",
}

TEMPLATES.env.globals["static"] = static_url
TEMPLATES.env.globals["status_labels"] = STATUS_LABELS


def page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request,
        template,
        context,
        status_code=status_code,
        headers=page_headers(getattr(request.app.state, "media_origin", None)),
    )
    return response
