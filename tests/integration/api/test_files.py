"""Stored files served from signed URLs on the gateway's origin: never active content."""

from __future__ import annotations

import pytest

from comfygate.api.served_files import CONTENT_SECURITY_POLICY
from tests.integration.conftest import GatewayFactory

JOB = "outputs/0194a1b2-0000-7000-8000-000000000001/main/1"
SCRIPT = b"<script>fetch('/v1/jobs').then(r => r.text()).then(alert)</script>"


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ("9-0.png", "inline"),
        ("9-0.webp", "inline"),
        ("9-0.mp4", "inline"),
        ("9-0.txt", "inline"),
        ("9-0.html", "attachment"),
        ("9-0.svg", "attachment"),
        ("9-0.xml", "attachment"),
        ("9-0.js", "attachment"),
        ("9-0.pdf", "attachment"),
        ("9-0.bin", "attachment"),
        ("9-0", "attachment"),
    ],
)
async def test_a_stored_file_is_never_sniffed_nor_run_and_only_passive_types_are_inline(
    start_gateway: GatewayFactory, name: str, disposition: str
) -> None:
    gateway = await start_gateway()
    key = f"{JOB}/{name}"
    # The bytes are script whatever the name says: a browser must not run them.
    await gateway.gw.storage.put_bytes(key, SCRIPT, "application/octet-stream")
    url, _ = await gateway.gw.storage.signed_url(key, 600)
    async with gateway.client() as c:
        r = await c.get(url)
    assert r.status_code == 200 and r.content == SCRIPT
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["content-disposition"] == f'{disposition}; filename="{name}"'
