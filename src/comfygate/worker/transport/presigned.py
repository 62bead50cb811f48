"""A spooled output sent straight to storage by URLs the gateway presigns: in one PUT,
or, when the gateway answers with parts (large files), one PUT per part, up to
PART_CONCURRENCY of them at once as S3 clients do, the ETags handed back in part order
for the gateway to join them. Each PUT body reads its own section of the spool a chunk
at a time, by offset, so not even a part is held whole: about PART_CONCURRENCY chunks
are read at once. A part that fails for good stops the others and the upload is
aborted."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

import httpx

log = logging.getLogger(__name__)

#: what a PUT body yields at a time
CHUNK = 256 * 1024
#: parts in flight at once, each holding about one CHUNK: a lone PUT is bound by one
#: connection's round trips, so S3 clients send several (boto3's TransferConfig)
PART_CONCURRENCY = 4
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
    if "parts" in signed:
        await _send_parts(http, ask, spool, size, signed)
    else:
        await _put(http, signed, spool, 0, size)
    return str(signed["key"])


async def _send_parts(
    http: httpx.AsyncClient, ask: Ask, spool: IO[bytes], size: int, signed: dict[str, Any]
) -> None:
    upload_id = signed["upload_id"]
    try:
        etags = await _put_parts(http, signed["parts"], spool)
        await ask("parts/complete", {"upload_id": upload_id, "bytes": size, "etags": etags})
    except BaseException:
        # Parts sent so far would linger, billed, until a lifecycle rule drops them.
        try:
            await asyncio.wait_for(ask("parts/abort", {"upload_id": upload_id}), ABORT_TIMEOUT_S)
        except Exception as exc:  # the upload's own failure is the one to report
            log.warning("multipart upload %s not aborted: %s", upload_id, exc)
        raise


async def _put_parts(
    http: httpx.AsyncClient, parts: list[dict[str, Any]], spool: IO[bytes]
) -> list[str]:
    """Every part's ETag, in part order, whatever order storage took them in."""
    # one offset more than parts: where the last one ends
    offsets = itertools.accumulate((int(part["bytes"]) for part in parts), initial=0)
    # One queue of parts for all senders: a sender takes the next part when it is done
    # with its last, so PART_CONCURRENCY are in flight until the parts run out.
    todo = enumerate(zip(parts, offsets, strict=False))
    etags: list[str] = [""] * len(parts)

    async def sender() -> None:
        for index, (part, offset) in todo:
            etags[index] = await _put_part(http, part, spool, offset)

    try:
        async with asyncio.TaskGroup() as senders:
            for _ in range(min(PART_CONCURRENCY, len(parts))):
                senders.create_task(sender())
    except BaseExceptionGroup as failed:
        # The first part to fail for good had the others cancelled: its error is the
        # upload's (the caller expects an OSError, not a group of them).
        raise failed.exceptions[0] from None
    return etags


async def _put_part(
    http: httpx.AsyncClient, part: dict[str, Any], spool: IO[bytes], offset: int
) -> str:
    """Send one part from ``offset`` of the spool, again while storage fails it; its ETag."""
    retries = 0
    while True:
        try:
            put = await _put(http, part, spool, offset, int(part["bytes"]))
            break
        except _Flaky as exc:
            if retries == PART_RETRIES:
                raise OSError(f"part {part['number']}: {exc}") from exc
            log.warning("part %s not stored (%s); sending it again", part["number"], exc)
            await asyncio.sleep(PART_RETRY_S * 2**retries)
            retries += 1
    etag = put.headers.get("etag")
    if not etag:
        raise OSError(f"storage gave part {part['number']} no ETag")
    return str(etag)


class _Flaky(OSError):
    """Storage did not answer, or answered 5xx: the same request may well pass."""


async def _put(
    http: httpx.AsyncClient, signed: dict[str, Any], spool: IO[bytes], offset: int, size: int
) -> httpx.Response:
    """One presigned PUT of the ``size`` bytes of the spool from ``offset``."""
    headers = {**signed["headers"], "Content-Length": str(size)}
    body = _section(spool, offset, size)
    try:
        put = await http.request(signed["method"], signed["url"], content=body, headers=headers)
    except httpx.TransportError as exc:
        raise _Flaky(f"uploading to storage failed: {exc}") from exc
    if put.status_code >= 500:
        raise _Flaky(f"storage failed the upload: HTTP {put.status_code}")
    if put.status_code >= 300:
        raise OSError(f"storage refused the upload: HTTP {put.status_code}")
    return put


async def _section(spool: IO[bytes], offset: int, size: int) -> AsyncIterator[bytes]:
    end = offset + size
    while offset < end:
        # Parts in flight at once share the spool's position, so each read seeks first;
        # nothing awaits between the seek and the read, so no other part moves it there.
        # (os.pread would do without, but needs the spool on disk, and Windows lacks it.)
        spool.seek(offset)
        chunk = spool.read(min(CHUNK, end - offset))
        if not chunk:
            raise OSError(f"the spooled output ended {end - offset} bytes early")
        offset += len(chunk)
        yield chunk
