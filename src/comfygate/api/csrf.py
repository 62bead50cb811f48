"""Cross-site request forgery: a cookie rides along on any site's form or fetch, so an
unsafe request the gateway knows only by its cookie must prove it comes from our pages:
a double-submit token (the ``comfygate_csrf`` cookie echoed in ``X-CSRF-Token``, which
only a page of this origin can read) or an ``Origin`` header naming this origin."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response

from comfygate.errors import ComfygateError

COOKIE = "comfygate_csrf"
HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class CsrfRejected(ComfygateError):
    """A change signed by a cookie needs X-CSRF-Token or a same-origin Origin."""

    code = "csrf_failed"
    status_code = 403


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is not None and origin == f"{request.url.scheme}://{request.url.netloc}"


def _double_submitted(request: Request) -> bool:
    cookie, header = request.cookies.get(COOKIE), request.headers.get(HEADER)
    return bool(cookie and header) and hmac.compare_digest(str(cookie), str(header))


def check_cookie_request(request: Request) -> None:
    """For a request authenticated by a cookie: unsafe methods need the token or Origin."""
    if request.method in UNSAFE and not (_double_submitted(request) or same_origin(request)):
        raise CsrfRejected


def check_anonymous_request(request: Request) -> None:
    """Without credentials (``allow_anonymous``): a browser on another site names itself
    in ``Origin``; curl and scripts send none."""
    foreign = "origin" in request.headers and not same_origin(request)
    if request.method in UNSAFE and foreign and not _double_submitted(request):
        raise CsrfRejected


def ensure_cookie(request: Request, response: Response) -> Response:
    """Give a page's browser the token its scripts echo (readable by them on purpose)."""
    if not request.cookies.get(COOKIE):
        response.set_cookie(
            COOKIE,
            secrets.token_urlsafe(24),
            path="/",
            httponly=False,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response
