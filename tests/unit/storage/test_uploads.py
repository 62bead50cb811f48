from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from comfygate.clock import FakeClock
from comfygate.errors import InvalidUpload, NotFound, UploadIncomplete
from comfygate.storage.local import LocalStorage
from comfygate.storage.signing import Signer
from comfygate.storage.uploads import UploadLimits, Uploads
from tests.images import png


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
    upload_id, signed = await uploads.create("alice", content_type="image/png", size=len(data))
    assert signed.method == "PUT" and signed.url.split("?")[0].endswith(
        f"/files/inputs/{upload_id}/original"
    )
    await uploads.storage.put_bytes(f"inputs/{upload_id}/original", data, "image/png")
    info = await uploads.complete("alice", upload_id)
    assert (info["width"], info["height"], info["content_type"]) == (8, 6, "image/png")
    resolved = await uploads.resolve("alice", upload_id)
    assert resolved is not None
    assert (resolved.key, resolved.filename) == (f"inputs/{upload_id}/image.png", "image.png")
    # the re-encoded picture is kept, the client's bytes are not
    kept = [o.key for o in await uploads.storage.list(f"inputs/{upload_id}")]
    assert kept == [f"inputs/{upload_id}/image.png", f"inputs/{upload_id}/upload.json"]
    assert (
        hashlib.sha256(await uploads.storage.get_bytes(resolved.key)).hexdigest()
        == (info["sha256"])
    )
    assert await uploads.resolve("bob", upload_id) is None
    with pytest.raises(NotFound):
        await uploads.complete("bob", upload_id)


async def test_incomplete_upload_does_not_resolve(uploads: Uploads) -> None:
    upload_id, _ = await uploads.create("alice", content_type="image/png", size=10)
    assert await uploads.resolve("alice", upload_id) is None
    with pytest.raises(UploadIncomplete, match="No bytes"):
        await uploads.complete("alice", upload_id)


async def test_more_bytes_than_declared_is_refused(uploads: Uploads) -> None:
    data = png()
    upload_id, _ = await uploads.create("alice", content_type="image/png", size=10)
    await uploads.storage.put_bytes(f"inputs/{upload_id}/original", data, "image/png")
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
        await uploads.put_direct("alice", data)


async def test_format_not_allowed(uploads: Uploads) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "GIF")
    with pytest.raises(InvalidUpload, match="format GIF is not allowed"):
        await uploads.put_direct("alice", buf.getvalue())


async def test_declared_type_and_size_are_checked(uploads: Uploads) -> None:
    with pytest.raises(InvalidUpload) as err:
        await uploads.create("alice", content_type="application/x-msdownload", size=5)
    assert err.value.details[0]["path"] == "/content_type"
    with pytest.raises(InvalidUpload) as err:
        await uploads.create("alice", content_type="image/png", size=10**9)
    assert err.value.details[0]["path"] == "/bytes"


async def test_a_refused_file_is_deleted(uploads: Uploads) -> None:
    upload_id, _ = await uploads.create("alice", content_type="image/png", size=100)
    await uploads.storage.put_bytes(f"inputs/{upload_id}/original", b"<html>" * 10, "image/png")
    with pytest.raises(InvalidUpload, match="not a readable image"):
        await uploads.complete("alice", upload_id)
    assert await uploads.storage.stat(f"inputs/{upload_id}/original") is None
