"""S3-only behaviour: presigned URLs a client uses without credentials, and uploads."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from comfygate.clock import FakeClock
from comfygate.config import S3Settings, Settings, parse_s3_url
from comfygate.errors import InvalidUpload
from comfygate.storage.base import PartsRefused
from comfygate.storage.parts import MIB, plan_parts
from comfygate.storage.s3 import MAX_TTL_S, S3Storage
from comfygate.storage.uploads import UploadLimits, Uploads
from tests.images import png
from tests.s3server import S3Server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def s3(s3_server: S3Server, clock: FakeClock) -> S3Storage:
    return s3_server.storage(clock)


async def test_presigned_get_downloads_the_object(s3: S3Storage, clock: FakeClock) -> None:
    await s3.put_bytes("outputs/j/main/1/a.png", b"\x89PNG-bytes", "image/png")
    signed = s3.sign_get("outputs/j/main/1/a.png", ttl_s=120)
    assert signed.method == "GET" and signed.expires_at == clock.now() + timedelta(seconds=120)
    assert parse_qs(urlsplit(signed.url).query)["X-Amz-Expires"] == ["120"]
    async with httpx.AsyncClient() as client:
        got = await client.get(signed.url)
        assert got.status_code == 200 and got.content == b"\x89PNG-bytes"
        assert got.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    ("name", "served_as"),
    [("page.html", "text/html"), ("drawing.svg", "image/svg+xml"), ("data.xml", None)],
)
async def test_active_content_is_presigned_as_a_download(
    s3: S3Storage, name: str, served_as: str | None
) -> None:
    # Stored as the worker said (text/html), asked for inline by nobody: the bucket's own
    # origin must not render it either.
    key = f"outputs/j/main/1/{name}"
    await s3.put_bytes(key, b"<svg onload=alert(1)>", "text/html")
    async with httpx.AsyncClient() as http:
        got = await http.get(s3.sign_get(key, ttl_s=120).url)
    assert got.status_code == 200 and got.content == b"<svg onload=alert(1)>"
    assert got.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert got.headers["content-type"].startswith(served_as or "application/")


async def test_a_picture_is_presigned_to_show_inline(s3: S3Storage) -> None:
    await s3.put_bytes("outputs/j/main/1/a.png", png(), "image/png")
    async with httpx.AsyncClient() as http:
        got = await http.get(s3.sign_get("outputs/j/main/1/a.png", ttl_s=120).url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert "attachment" not in got.headers.get("content-disposition", "")


async def test_presigned_put_signs_the_declared_type_and_length(s3: S3Storage) -> None:
    signed = s3.sign_put("inputs/u/a.png", ttl_s=60, content_type="image/png", size=7)
    assert signed.method == "PUT" and signed.headers == {"Content-Type": "image/png"}
    # S3 refuses a body of another length or type: both are in the signature.
    query = parse_qs(urlsplit(signed.url).query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert query["X-Amz-Expires"] == ["60"]
    async with httpx.AsyncClient() as client:
        put = await client.put(signed.url, content=b"png-ish", headers=signed.headers)
    assert put.status_code == 200
    assert await s3.get_bytes("inputs/u/a.png") == b"png-ish"


def test_presigned_urls_live_at_most_seven_days(s3: S3Storage) -> None:
    signed = s3.sign_get("outputs/j/a.png", ttl_s=30 * 24 * 3600)
    assert parse_qs(urlsplit(signed.url).query)["X-Amz-Expires"] == [str(MAX_TTL_S)]


def test_the_origin_is_the_endpoint(s3: S3Storage, s3_server: S3Server) -> None:
    assert s3.url_origin == s3_server.endpoint_url


async def test_upload_complete_checks_the_object_in_the_bucket(
    s3: S3Storage, clock: FakeClock
) -> None:
    limits = UploadLimits(max_bytes=100_000, max_pixels=64 * 64, formats=("PNG",), url_ttl_s=60)
    uploads = Uploads(s3, limits, clock)
    data = png()
    upload_id, signed = await uploads.create("alice", content_type="image/png", size=len(data))
    async with httpx.AsyncClient() as client:
        # moto checks no signature, so one byte more than signed gets through (as past
        # an S3-compatible service that does not enforce it)...
        put = await client.put(signed.url, content=data + b"x", headers=signed.headers)
        assert put.status_code == 200
        with pytest.raises(InvalidUpload) as refused:
            await uploads.complete("alice", upload_id)
        assert refused.value.details[0]["path"] == "/bytes"
        # ...and complete deletes it, so nothing oversized stays in the bucket.
        assert await s3.stat(f"inputs/{upload_id}/original") is None
        put = await client.put(signed.url, content=data, headers=signed.headers)
        assert put.status_code == 200
    done = await uploads.complete("alice", upload_id)
    assert (done["width"], done["height"], done["bytes"]) == (8, 6, len(data))
    resolved = await uploads.resolve("alice", upload_id)
    assert resolved is not None and resolved.key == f"inputs/{upload_id}/image.png"
    assert Image.open(io.BytesIO(await s3.get_bytes(resolved.key))).size == (8, 6)
    assert await s3.stat(f"inputs/{upload_id}/original") is None


def test_storage_url_is_parsed_and_checked() -> None:
    assert parse_s3_url("s3://bucket/some/prefix/") == ("bucket", "some/prefix")
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    for bad in ("bucket/prefix", "s3://", "gs://bucket", "s3:///prefix"):
        with pytest.raises(ValueError, match="storage_url"):
            Settings(storage_url=bad)


def test_s3_settings_come_from_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYGATE_STORAGE_URL", "s3://media/comfygate")
    monkeypatch.setenv("COMFYGATE_S3__ENDPOINT_URL", "http://minio:9000/")
    monkeypatch.setenv("COMFYGATE_S3__ACCESS_KEY_ID", "id")
    settings = Settings()
    assert settings.storage_url == "s3://media/comfygate"
    assert settings.s3.endpoint_url == "http://minio:9000"
    assert settings.s3.access_key_id == "id"
    with pytest.raises(ValueError, match="endpoint_url"):
        S3Settings(endpoint_url="minio:9000")


async def test_a_large_stream_is_a_multipart_upload(
    s3: S3Storage, caplog: pytest.LogCaptureFixture
) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(160):  # 10 MiB in 64 KiB chunks
            yield bytes([i]) * (64 * 1024)

    with caplog.at_level(logging.INFO, logger="werkzeug"):
        size, _ = await s3.put_stream("outputs/j/big.mp4", parts(), "video/mp4")
    assert size == 10 * 1024 * 1024
    requests = [r.getMessage() for r in caplog.records if "big.mp4" in r.getMessage()]
    assert any("uploadId=" in line and "partNumber=2" in line for line in requests), requests


def _video(mib: int) -> bytes:
    """Bytes whose every MiB differs, so no two parts share an ETag."""
    return b"".join(bytes([n]) * MIB for n in range(mib))


async def _put_parts(s3: S3Storage, key: str, data: bytes) -> tuple[str, list[str]]:
    """Begin a multipart upload of ``data`` in 5 MiB parts and send every part."""
    sizes = plan_parts(len(data), 5 * MIB)
    started = await s3.begin_parts(key, ttl_s=300, content_type="video/mp4", sizes=sizes)
    assert started.sizes == sizes and len(started.parts) == len(sizes) == 3
    etags, offset = [], 0
    async with httpx.AsyncClient() as client:
        for size, signed in zip(sizes, started.parts, strict=True):
            query = parse_qs(urlsplit(signed.url).query)
            assert query["X-Amz-SignedHeaders"] == ["content-length;host"]
            put = await client.put(
                signed.url, content=data[offset : offset + size], headers=signed.headers
            )
            assert put.status_code == 200, put.text
            etags.append(put.headers["etag"])
            offset += size
    return started.upload_id, etags


async def test_presigned_parts_join_into_the_object(s3_server: S3Server, clock: FakeClock) -> None:
    s3 = S3Storage.from_settings(url := s3_server.fresh_url(), s3_server.settings(), clock)
    data = _video(11) + b"tail"
    upload_id, etags = await _put_parts(s3, "outputs/j/main/1/9-0.mp4", data)
    assert s3_server.open_uploads(url)
    await s3.finish_parts("outputs/j/main/1/9-0.mp4", upload_id, etags)
    assert await s3.get_bytes("outputs/j/main/1/9-0.mp4") == data
    assert s3_server.open_uploads(url) == []


async def test_parts_storage_will_not_join_are_refused_and_abort_drops_them(
    s3_server: S3Server, clock: FakeClock
) -> None:
    s3 = S3Storage.from_settings(url := s3_server.fresh_url(), s3_server.settings(), clock)
    upload_id, etags = await _put_parts(s3, "outputs/j/main/1/9-0.mp4", _video(11))
    with pytest.raises(PartsRefused) as refused:
        await s3.finish_parts("outputs/j/main/1/9-0.mp4", upload_id, [etags[0], etags[0], etags[2]])
    assert refused.value.code == "InvalidPart"
    assert s3_server.open_uploads(url) == [f"{parse_s3_url(url)[1]}/outputs/j/main/1/9-0.mp4"]
    await s3.abort_parts("outputs/j/main/1/9-0.mp4", upload_id)
    assert s3_server.open_uploads(url) == []
    assert await s3.stat("outputs/j/main/1/9-0.mp4") is None
    await s3.abort_parts("outputs/j/main/1/9-0.mp4", upload_id)  # gone already: fine


async def test_unfinished_uploads_begun_before_a_time_are_dropped(
    s3_server: S3Server, clock: FakeClock
) -> None:
    s3 = S3Storage.from_settings(url := s3_server.fresh_url(), s3_server.settings(), clock)
    prefix = parse_s3_url(url)[1]
    sizes = plan_parts(11 * MIB, 5 * MIB)
    for key in ("outputs/j/main/1/9-0.mp4", "outputs/k/main/2/9-0.mp4", "inputs/u/a.mp4"):
        await s3.begin_parts(key, ttl_s=300, content_type="video/mp4", sizes=sizes)
    # moto dates every upload 2010-11-10: a cutoff before that keeps them all.
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    assert await s3.abort_open_parts("outputs/", begun_before=long_ago) == 0
    assert len(s3_server.open_uploads(url)) == 3
    assert await s3.abort_open_parts("outputs/", begun_before=datetime.now(UTC)) == 2
    assert s3_server.open_uploads(url) == [f"{prefix}/inputs/u/a.mp4"]
