"""Request bodies past their cap get 413 with the error JSON before the rest is read:
over a raw socket, the body is never finished, so only an early answer can come."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from tests.integration.conftest import GatewayFactory, RunningGateway

SUBMIT = "/v1/workflows/image-ops/jobs"
LIMIT = 64 * 1024


async def unfinished(gateway: RunningGateway, head: str, *parts: bytes) -> tuple[int, Any]:
    """Send ``head`` and ``parts`` of a body that never ends; the status and JSON of
    the answer, which must come (and the connection close) within 10 s."""
    url = urlsplit(gateway.url)
    assert url.hostname and url.port
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head.encode() + b"".join(parts))
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body)


def head_of(content_type: str, length: int) -> str:
    return (
        f"POST {SUBMIT} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )


def expect_413(status: int, body: Any, limit: int) -> None:
    assert status == 413
    assert body["error"]["code"] == "body_too_large"
    assert body["error"]["details"] == {"max_bytes": limit}


async def test_a_declared_length_past_the_cap_is_refused_before_the_body_is_read(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(requests={"max_body_bytes": LIMIT})
    head = head_of("application/json", 50 * 1024 * 1024)
    expect_413(*await unfinished(gateway, head, b'{"params": {"x": "' + b"a" * 1000), LIMIT)


async def test_a_chunked_body_is_refused_once_it_passes_the_cap(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(requests={"max_body_bytes": LIMIT})
    head = (
        f"POST {SUBMIT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 16 * 1024
    parts = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(5)]
    expect_413(*await unfinished(gateway, head, *parts), LIMIT)


async def test_multipart_has_its_own_cap(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(
        requests={"max_body_bytes": LIMIT, "max_multipart_bytes": 4 * LIMIT}
    )
    params = json.dumps({"params": {}, "metadata": {}, "webhook": None}) + " " * 2 * LIMIT
    async with gateway.client() as c:
        as_part = await c.post(SUBMIT, files={"params": (None, params, "application/json")})
    assert as_part.status_code == 202, as_part.text
    multipart = "multipart/form-data; boundary=b"
    expect_413(*await unfinished(gateway, head_of(multipart, 5 * LIMIT), b"--b\r\n"), 4 * LIMIT)
    json_type = "application/json"
    expect_413(*await unfinished(gateway, head_of(json_type, 2 * LIMIT), b"{"), LIMIT)


async def test_a_signed_upload_is_held_to_its_own_size_not_the_cap(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(requests={"max_body_bytes": 1024})
    async with gateway.client() as c:
        declared = await c.post(
            "/v1/uploads",
            json={"filename": "a.png", "content_type": "image/png", "bytes": 4096},
        )
        up = declared.json()["upload"]
        put = await c.put(up["url"], content=b"\0" * 4096, headers=up["headers"])
    assert put.status_code == 204, put.text
