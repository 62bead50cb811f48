from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from comfygate.clock import FakeClock
from comfygate.errors import InvalidUpload, NotFound
from comfygate.storage.local import LocalStorage
from comfygate.storage.signing import Signer
from comfygate.storage.uploads import UploadLimits, Uploads, safe_filename


def png(w: int = 8, h: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def uploads(tmp_path: Path) -> Uploads:
    clock = FakeClock()
    storage = LocalStorage(tmp_path, Signer(b"k" * 32, clock))
    limits = UploadLimits(
        max_bytes=100_000, max_pixels=64 * 64, formats=("PNG", "JPEG"), url_ttl_s=60
    )
    return Uploads(storage, limits, clock)


async def test_declare_send_complete_then_resolve(uploads: Uploads) -> None:
    data = png()
    upload_id, signed = await uploads.create(
        "alice", filename="../me.png", content_type="image/png", size=len(data)
    )
    assert signed.method == "PUT" and "/files/inputs/" in signed.url
    key = f"inputs/{upload_id}/me.png"
    await uploads.storage.put_bytes(key, data, "image/png")
    info = await uploads.complete("alice", upload_id)
    assert (info["width"], info["height"], info["content_type"]) == (8, 6, "image/png")
    resolved = await uploads.resolve("alice", upload_id)
    assert resolved is not None and resolved.key == key
    assert await uploads.resolve("bob", upload_id) is None
    with pytest.raises(NotFound):
        await uploads.complete("bob", upload_id)


async def test_incomplete_upload_does_not_resolve(uploads: Uploads) -> None:
    upload_id, _ = await uploads.create(
        "alice", filename="a.png", content_type="image/png", size=10
    )
    assert await uploads.resolve("alice", upload_id) is None
    with pytest.raises(InvalidUpload, match="no bytes"):
        await uploads.complete("alice", upload_id)


async def test_more_bytes_than_declared_is_refused(uploads: Uploads) -> None:
    data = png()
    upload_id, _ = await uploads.create(
        "alice", filename="a.png", content_type="image/png", size=10
    )
    await uploads.storage.put_bytes(f"inputs/{upload_id}/a.png", data, "image/png")
    with pytest.raises(InvalidUpload) as err:
        await uploads.complete("alice", upload_id)
    assert err.value.details[0]["path"] == "/bytes"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not an image at all", "not a readable image"),
        (png(65, 65), "exceeds"),
    ],
)
async def test_bad_files_are_refused_with_the_reason(
    uploads: Uploads, data: bytes, message: str
) -> None:
    with pytest.raises(InvalidUpload, match=message):
        await uploads.put_direct("alice", filename="x.png", content_type="image/png", data=data)


async def test_format_not_allowed(uploads: Uploads) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "GIF")
    with pytest.raises(InvalidUpload, match="format GIF is not allowed"):
        await uploads.put_direct(
            "alice", filename="x.gif", content_type="image/gif", data=buf.getvalue()
        )


async def test_declared_type_and_size_are_checked(uploads: Uploads) -> None:
    with pytest.raises(InvalidUpload) as err:
        await uploads.create(
            "alice", filename="a.exe", content_type="application/x-msdownload", size=5
        )
    assert err.value.details[0]["path"] == "/content_type"
    with pytest.raises(InvalidUpload) as err:
        await uploads.create("alice", filename="a.png", content_type="image/png", size=10**9)
    assert err.value.details[0]["path"] == "/bytes"


def test_safe_filename_strips_paths_and_oddities() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("C:\\x\\my pic!.png") == "my_pic_.png"
    assert safe_filename("...") == "upload"
