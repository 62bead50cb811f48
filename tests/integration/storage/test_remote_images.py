"""Image parameters given as https URLs, fetched through the SSRF guard from a loopback
HTTPS server whose certificate (from a test CA) names only ``images.test``: the name is
resolved by an injected resolver, the socket pinned to the checked address."""

from __future__ import annotations

import io
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from PIL import Image

from comfygate.clock import FakeClock
from comfygate.errors import InvalidUpload
from comfygate.ssrf import AddressGuard, IPAddress, UnsafeAddress, guarded_client
from comfygate.storage.local import LocalStorage
from comfygate.storage.remote import RemoteImageFetcher
from comfygate.storage.signing import Signer
from comfygate.storage.uploads import UploadLimits, Uploads
from tests.integration.conftest import GatewayFactory, wait_status
from tests.integration.receiver import Receiver

NAMES = {"images.test": "127.0.0.1", "private.test": "127.0.0.1", "wrong.test": "127.0.0.1"}


def png(size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


async def resolve(host: str, port: int) -> list[IPAddress]:
    if host not in NAMES:
        raise OSError("unknown name")
    return [ipaddress.ip_address(NAMES[host])]


@dataclass
class Site:
    server: Receiver
    port: int
    tls: ssl.SSLContext

    def url(self, path: str, host: str = "images.test") -> str:
        return f"https://{host}:{self.port}{path}"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    ca = trustme.CA()
    cert = ca.issue_cert("images.test", "private.test")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    server = Receiver()
    url = await server.start(ssl_certfile=str(cert_file), ssl_keyfile=str(key_file))
    tls = ssl.create_default_context()
    ca.configure_trust(tls)
    site = Site(server, int(url.rsplit(":", 1)[1]), tls)
    server.answers["/pic.png"] = (200, {"content-type": "image/png"}, png())
    server.answers["/big.png"] = (200, {"content-type": "image/png"}, png(64))
    for hop in range(1, 5):
        server.answers[f"/hop{hop}"] = (302, {"location": f"/hop{hop - 1}"}, b"")
    server.answers["/hop0"] = (302, {"location": "/pic.png"}, b"")
    server.answers["/to-private"] = (302, {"location": site.url("/secret", "private.test")}, b"")
    server.answers["/to-loopback"] = (301, {"location": f"https://127.0.0.2:{site.port}/x"}, b"")
    server.answers["/to-http"] = (302, {"location": "http://images.test/pic.png"}, b"")
    yield site
    await server.stop()


def fetcher(
    tmp_path: Path, site: Site, allow: list[str], max_bytes: int = 10**6
) -> RemoteImageFetcher:
    clock = FakeClock()
    storage = LocalStorage(tmp_path / "storage", Signer(b"k" * 32, clock))
    limits = UploadLimits(max_bytes=max_bytes, max_pixels=40 * 40, formats=("PNG",), url_ttl_s=60)
    client = guarded_client(AddressGuard.from_settings(allow, resolve), verify=site.tls)
    return RemoteImageFetcher(client, Uploads(storage, limits, clock), max_redirects=3)


async def test_a_name_is_fetched_from_the_checked_address_with_tls_on_the_name(
    tmp_path: Path, site: Site
) -> None:
    images = fetcher(tmp_path, site, ["images.test"])
    upload_id = await images.fetch("alice", site.url("/pic.png"))
    resolved = await images.uploads.resolve("alice", upload_id)
    # Stored under a generated name, never the URL's path.
    assert resolved is not None and resolved.filename == "image.png"
    [request] = site.server.at("/pic.png")
    assert request.headers["host"] == f"images.test:{site.port}"
    # the certificate names images.test only: another name on the same address fails TLS
    with pytest.raises(InvalidUpload, match="could not be fetched"):
        await fetcher(tmp_path, site, ["127.0.0.0/8"]).fetch("alice", site.url("/x", "wrong.test"))


async def test_loopback_is_refused_unless_allow_listed(tmp_path: Path, site: Site) -> None:
    with pytest.raises(UnsafeAddress, match=r"images.test resolves to 127\.0\.0\.1"):
        await fetcher(tmp_path, site, []).fetch("alice", site.url("/pic.png"))
    assert site.server.seen == []


async def test_every_redirect_hop_is_checked_and_at_most_three_are_taken(
    tmp_path: Path, site: Site
) -> None:
    images = fetcher(tmp_path, site, ["images.test"])
    assert await images.fetch("alice", site.url("/hop2"))  # hop2 → hop1 → hop0 → pic
    with pytest.raises(InvalidUpload, match="more than 3"):
        await images.fetch("alice", site.url("/hop3"))
    with pytest.raises(UnsafeAddress, match=r"private\.test resolves to 127\.0\.0\.1"):
        await images.fetch("alice", site.url("/to-private"))
    with pytest.raises(UnsafeAddress, match=r"127\.0\.0\.2"):
        await images.fetch("alice", site.url("/to-loopback"))
    with pytest.raises(InvalidUpload, match="https"):
        await images.fetch("alice", site.url("/to-http"))
    assert site.server.at("/secret") == [] and site.server.at("/x") == []


async def test_the_limits_of_an_upload_apply(tmp_path: Path, site: Site) -> None:
    with pytest.raises(InvalidUpload, match="larger than 40 bytes"):
        await fetcher(tmp_path, site, ["images.test"], max_bytes=40).fetch(
            "alice", site.url("/pic.png")
        )
    with pytest.raises(InvalidUpload, match="pixels"):
        await fetcher(tmp_path, site, ["images.test"]).fetch("alice", site.url("/big.png"))
    with pytest.raises(InvalidUpload, match=r"answered 200|not a readable image"):
        site.server.answers["/text"] = (200, {"content-type": "text/plain"}, b"hello")
        await fetcher(tmp_path, site, ["images.test"]).fetch("alice", site.url("/text"))


async def test_a_job_takes_an_image_url_and_refuses_an_unsafe_one(
    site: Site, sim: object, start_gateway: GatewayFactory
) -> None:
    gw = await start_gateway(
        sim.url,  # type: ignore[attr-defined]
        outbound={"allow": ["images.test"]},
        build={"resolver": resolve, "tls": site.tls},
    )
    async with gw.client() as c:
        r = await c.post(
            "/v1/workflows/img2img/jobs", json={"params": {"image": site.url("/pic.png")}}
        )
        assert r.status_code == 202, r.text
        done = await wait_status(c, r.json()["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", done
        for url, message in [
            (site.url("/to-private"), "private.test resolves to 127.0.0.1"),
            ("https://127.0.0.1/x.png", "not public"),
            ("http://images.test/x.png", "https"),
        ]:
            r = await c.post("/v1/workflows/img2img/jobs", json={"params": {"image": url}})
            assert r.status_code == 422, r.text
            [detail] = r.json()["error"]["details"]
            assert detail["path"] == "/image" and message in detail["message"]
