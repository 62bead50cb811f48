"""A cap on request bodies, enforced before a route reads them.

A declared Content-Length past the cap is answered 413 at once, without reading a
byte of the body; a body without one (chunked) is counted as it arrives, and the
413 goes out as soon as the count passes the cap, whatever the route was doing with
it (FastAPI turns a failure while it parses a body into a 400 of its own: that
answer is dropped for ours). Streamed uploads with limits of their own pass through:
a signed ``PUT /files/…`` carries its signed size, an agent's output upload is fenced
by its lease."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comfygate.api.errors import error_body
from comfygate.errors import BodyTooLarge

#: ``PUT`` paths whose routes stream the body under a limit of their own
STREAMED_PUTS = ("/files/", "/worker/v1/jobs/")


@dataclass(frozen=True)
class BodyLimits:
    max_body_bytes: int
    max_multipart_bytes: int

    def for_scope(self, scope: Scope) -> int | None:
        """The cap of this request's body; None for a streamed upload."""
        if scope["method"] == "PUT" and scope["path"].startswith(STREAMED_PUTS):
            return None
        content_type = _header(scope, b"content-type") or b""
        if content_type.lower().startswith(b"multipart/form-data"):
            return self.max_multipart_bytes
        return self.max_body_bytes


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.for_scope(scope) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        seen = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise BodyTooLarge
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except BodyTooLarge:
            if not refused:
                raise
        if refused and not started:
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body(
            BodyTooLarge.code,
            f"the request body is larger than {limit} bytes",
            {"max_bytes": limit},
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": BodyTooLarge.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: this connection cannot carry more.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
