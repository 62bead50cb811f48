"""The session ComfyClients share: https backends with the right CAs, and the proxy
taken from the environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from comfygate.comfy.client import ComfyClient
from comfygate.comfy.session import open_session
from comfygate.errors import BackendUnreachable
from tests.integration.comfy.replay import Replay
from tests.integration.tls_front import ConnectProxy, TlsFront

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("no_proxy_env")]


@pytest_asyncio.fixture(loop_scope="module")
async def front(replay: Replay) -> AsyncIterator[TlsFront]:
    front = TlsFront(replay.url)
    await front.start()
    yield front
    await front.stop()


async def test_an_https_backend_through_a_session_that_trusts_its_ca(front: TlsFront) -> None:
    async with open_session(tls=front.trusting()) as http:
        comfy = ComfyClient(front.url, http=http)
        assert (await comfy.system_stats()).comfyui_version == "0.3.64"
        assert await comfy.upload_image(b"x" * 100_000, "tls.png") == "tls.png"
    # The default bundle (certifi) does not know the test CA.
    async with open_session() as http:
        with pytest.raises(BackendUnreachable, match=r"[Cc]ertificate"):
            await ComfyClient(front.url, http=http).system_stats()


async def test_the_default_bundle_follows_ssl_cert_file(
    front: TlsFront, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As httpx did: a CA bundle named by SSL_CERT_FILE is what an own session trusts."""
    monkeypatch.setenv("SSL_CERT_FILE", str(front.ca_file(tmp_path)))
    async with ComfyClient(front.url, timeout=5) as comfy:
        assert (await comfy.system_stats()).comfyui_version == "0.3.64"


async def test_requests_go_through_the_proxy_from_the_environment(
    replay: Replay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay server stands in for the proxy: it answers the absolute-form request.
    monkeypatch.setenv("HTTP_PROXY", replay.url.replace("http://", "http://user:secret@"))
    async with ComfyClient("http://comfy.invalid:8188", timeout=5) as comfy:
        await comfy.interrupt()
    [seen] = replay.seen("POST", "/interrupt")
    assert seen.headers["host"] == "comfy.invalid:8188"
    assert seen.headers["proxy-authorization"] == "Basic dXNlcjpzZWNyZXQ="
    monkeypatch.setenv("NO_PROXY", ".invalid")
    async with ComfyClient("http://comfy.invalid:8188", timeout=5) as comfy:
        with pytest.raises(BackendUnreachable):
            await comfy.interrupt()


async def test_an_https_backend_through_a_tunnelling_proxy(
    front: TlsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ConnectProxy()
    await proxy.start()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://user:secret@"))
        async with open_session(tls=front.trusting()) as http:
            comfy = ComfyClient(front.url, http=http)
            assert (await comfy.system_stats()).comfyui_version == "0.3.64"
    finally:
        await proxy.stop()
    [head] = proxy.heads
    assert head.startswith(f"CONNECT {front.url.removeprefix('https://')} ".encode())
    assert b"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=" in head
