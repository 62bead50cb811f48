"""A spooled output sent straight to storage by URLs the gateway presigns: in one PUT,
or, when the gateway answers with parts (large files), one PUT per part in order, the
ETags handed back for the gateway to join them. Bytes are read from the spool a chunk
at a time, so not even a part is held whole."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

import httpx

log = logging.getLogger(__name__)

#: what a PUT body yields at a time
CHUNK = 256 * 1024
#: giving up on an upload waits this long for the gateway to drop its parts
ABORT_TIMEOUT_S = 10.0
#: a part storage did not take (no answer, or 5xx) is sent again this many times, after
#: this many seconds and then twice as many: one flaky request costs a part, not the file
PART_RETRIES = 2
PART_RETRY_S = 1.0

#: POST a JSON body to a gateway path of this output (``url``, ``parts/complete``…),
#: fenced by the lease; the answer's JSON. OSError when the gateway refuses or is away.
Ask = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def upload_spooled(
    http: httpx.AsyncClient, ask: Ask, spool: IO[bytes], size: int, content_type: str
) -> str:
    """Send the ``size`` bytes of ``spool`` (from its start) to storage; the key."""
    signed = await ask("url", {"content_type": content_type, "bytes": size, "multipart": True})
    spool.seek(0)
    if "parts" in signed:
        await _send_parts(http, ask, spool, size, signed)
    else:
        await _put(http, signed, spool, size)
    return str(signed["key"])


async def _send_parts(
    http: httpx.AsyncClient, ask: Ask, spool: IO[bytes], size: int, signed: dict[str, Any]
) -> None:
    upload_id = signed["upload_id"]
    try:
        etags = []
        for part in signed["parts"]:
            put = await _put_part(http, part, spool)
            etag = put.headers.get("etag")
            if not etag:
                raise OSError(f"storage gave part {part['number']} no ETag")
            etags.append(etag)
        await ask("parts/complete", {"upload_id": upload_id, "bytes": size, "etags": etags})
    except BaseException:
        # Parts sent so far would linger, billed, until a lifecycle rule drops them.
        try:
            await asyncio.wait_for(ask("parts/abort", {"upload_id": upload_id}), ABORT_TIMEOUT_S)
        except Exception as exc:  # the upload's own failure is the one to report
            log.warning("multipart upload %s not aborted: %s", upload_id, exc)
        raise


async def _put_part(
    http: httpx.AsyncClient, part: dict[str, Any], spool: IO[bytes]
) -> httpx.Response:
    start = spool.tell()
    retries = 0
    while True:
        try:
            return await _put(http, part, spool, int(part["bytes"]))
        except _Flaky as exc:
            if retries == PART_RETRIES:
                raise OSError(f"part {part['number']}: {exc}") from exc
            log.warning("part %s not stored (%s); sending it again", part["number"], exc)
            await asyncio.sleep(PART_RETRY_S * 2**retries)
            retries += 1
            spool.seek(start)


class _Flaky(OSError):
    """Storage did not answer, or answered 5xx: the same request may well pass."""


async def _put(
    http: httpx.AsyncClient, signed: dict[str, Any], spool: IO[bytes], size: int
) -> httpx.Response:
    """One presigned PUT of the spool's next ``size`` bytes."""
    headers = {**signed["headers"], "Content-Length": str(size)}
    try:
        put = await http.request(
            signed["method"], signed["url"], content=_section(spool, size), headers=headers
        )
    except httpx.TransportError as exc:
        raise _Flaky(f"uploading to storage failed: {exc}") from exc
    if put.status_code >= 500:
        raise _Flaky(f"storage failed the upload: HTTP {put.status_code}")
    if put.status_code >= 300:
        raise OSError(f"storage refused the upload: HTTP {put.status_code}")
    return put


async def _section(spool: IO[bytes], size: int) -> AsyncIterator[bytes]:
    left = size
    while left:
        chunk = spool.read(min(CHUNK, left))
        if not chunk:
            raise OSError(f"the spooled output ended {left} bytes early")
        left -= len(chunk)
        yield chunk
