"""What every Storage promises, run against the local directory and S3 (moto)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfygate.clock import FakeClock
from comfygate.storage.base import InvalidKey, Storage
from comfygate.storage.local import LocalStorage
from comfygate.storage.s3 import S3Storage
from comfygate.storage.signing import Signer
from tests.s3server import S3Server


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    clock = FakeClock()
    if request.param == "local":
        return LocalStorage(tmp_path / "s", Signer(b"k" * 32, clock))
    server: S3Server = request.getfixturevalue("s3_server")
    return server.storage(clock)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(storage: Storage, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key)])


async def test_bytes_round_trip_with_stat(storage: Storage) -> None:
    await storage.put_bytes("jobs/a/output.json", b'{"ok": 1}', "application/json")
    assert await storage.get_bytes("jobs/a/output.json") == b'{"ok": 1}'
    info = await storage.stat("jobs/a/output.json")
    assert info is not None
    assert (info.key, info.bytes, info.content_type) == (
        "jobs/a/output.json",
        9,
        "application/json",
    )
    await storage.put_bytes("jobs/a/output.json", b"{}", "application/json")
    assert await storage.get_bytes("jobs/a/output.json") == b"{}"


async def test_missing_objects(storage: Storage) -> None:
    assert await storage.stat("jobs/none/x.json") is None
    with pytest.raises(FileNotFoundError):
        await storage.get_bytes("jobs/none/x.json")
    with pytest.raises(FileNotFoundError):
        await read_all(storage, "jobs/none/x.json")
    await storage.delete("jobs/none/x.json")  # deleting what is gone is fine


async def test_stream_returns_size_and_digest(storage: Storage) -> None:
    size, sha = await storage.put_stream(
        "outputs/j/main/1/9-0.png", chunks(b"ab", b"cd"), "image/png"
    )
    assert (size, sha) == (4, hashlib.sha256(b"abcd").hexdigest())
    assert await read_all(storage, "outputs/j/main/1/9-0.png") == b"abcd"
    info = await storage.stat("outputs/j/main/1/9-0.png")
    assert info is not None and info.bytes == 4 and info.content_type == "image/png"


async def test_a_large_stream_goes_in_parts_and_comes_back_in_chunks(storage: Storage) -> None:
    # 9 MiB: more than one 8 MiB part of an S3 multipart upload.
    parts = [bytes([i]) * (64 * 1024) for i in range(144)]
    size, sha = await storage.put_stream("outputs/j/big.bin", chunks(*parts), "video/mp4")
    whole = b"".join(parts)
    assert (size, sha) == (len(whole), hashlib.sha256(whole).hexdigest())
    got = [chunk async for chunk in storage.open("outputs/j/big.bin")]
    assert len(got) > 1, "open streams: it does not hand back the file whole"
    assert b"".join(got) == whole


async def test_a_failed_stream_stores_nothing(storage: Storage) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 1024
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await storage.put_stream("outputs/j/partial.png", broken(), "image/png")
    assert await storage.stat("outputs/j/partial.png") is None


async def test_list_and_delete_a_folder(storage: Storage) -> None:
    for key in ("outputs/j/main/2/9-0.png", "outputs/j/main/1/9-0.png", "outputs/jj/main/1/x.png"):
        await storage.put_bytes(key, b"abc", "image/png")
    listed = await storage.list("outputs/j")
    assert [o.key for o in listed] == ["outputs/j/main/1/9-0.png", "outputs/j/main/2/9-0.png"]
    assert listed[0].bytes == 3 and listed[0].modified_at is not None
    assert await storage.list("outputs/none") == []
    assert await storage.delete_prefix("outputs/j") == 2
    assert await storage.list("outputs/j") == []
    assert [o.key for o in await storage.list("outputs/jj")] == ["outputs/jj/main/1/x.png"]


async def test_delete_one(storage: Storage) -> None:
    await storage.put_bytes("inputs/u/a.png", b"abc", "image/png")
    await storage.delete("inputs/u/a.png")
    assert await storage.stat("inputs/u/a.png") is None


def unusable(storage: Storage, request: pytest.FixtureRequest) -> Storage:
    """Storage of the same kind where nothing can be written or read."""
    if isinstance(storage, LocalStorage):
        # The folder replaced by a file under the running storage, as a lost mount might.
        shutil.rmtree(storage.root)
        storage.root.write_bytes(b"")
        return storage
    server: S3Server = request.getfixturevalue("s3_server")
    missing = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/p"
    return S3Storage.from_settings(missing, server.settings(), FakeClock())


async def test_readiness_probe_passes_when_storage_works_and_fails_when_it_does_not(
    storage: Storage, request: pytest.FixtureRequest
) -> None:
    await storage.check()
    with pytest.raises(OSError):
        await unusable(storage, request).check()


@pytest.mark.parametrize("key", ["../x", "a/../../b", "/etc/passwd", "a//b", ".hidden", ""])
async def test_keys_that_could_escape_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put_bytes(key, b"x", "text/plain")
    with pytest.raises(InvalidKey):
        storage.sign_get(key, ttl_s=60)
