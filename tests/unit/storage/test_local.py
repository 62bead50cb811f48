from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from comfygate.clock import FakeClock
from comfygate.storage.base import InvalidKey
from comfygate.storage.local import LocalStorage
from comfygate.storage.signing import Signer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(tmp_path: Path, clock: FakeClock) -> LocalStorage:
    return LocalStorage(tmp_path / "s", Signer(b"k" * 32, clock))


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


async def test_stream_round_trip_with_size_and_digest(storage: LocalStorage) -> None:
    size, sha = await storage.put_stream(
        "outputs/j/main/1/9-0.png", chunks(b"ab", b"cd"), "image/png"
    )
    assert size == 4
    assert sha == "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589"
    got = b"".join([c async for c in storage.open("outputs/j/main/1/9-0.png")])
    assert got == b"abcd"
    info = await storage.stat("outputs/j/main/1/9-0.png")
    assert info is not None and info.bytes == 4 and info.content_type == "image/png"
    assert not list((storage.root / "outputs/j/main/1").glob(".tmp-*"))


@pytest.mark.parametrize("key", ["../x", "a/../../b", "/etc/passwd", "a//b", ".hidden", ""])
async def test_keys_that_could_escape_are_refused(storage: LocalStorage, key: str) -> None:
    with pytest.raises(InvalidKey):
        await storage.put_bytes(key, b"x", "text/plain")


def test_signed_get_verifies_until_expiry_and_only_for_its_key(
    storage: LocalStorage, clock: FakeClock
) -> None:
    signed = storage.sign_get("jobs/a/output.json", ttl_s=60)
    q = parse_qs(urlsplit(signed.url).query)
    exp, sig = int(q["exp"][0]), q["sig"][0]
    assert storage.verify("GET", "jobs/a/output.json", exp, sig)
    assert not storage.verify("GET", "jobs/b/output.json", exp, sig)
    assert not storage.verify("PUT", "jobs/a/output.json", exp, sig)
    assert not storage.verify("GET", "jobs/a/output.json", exp + 1, sig)
    clock.advance(61)
    assert not storage.verify("GET", "jobs/a/output.json", exp, sig)


def test_signed_put_binds_type_and_size(storage: LocalStorage) -> None:
    signed = storage.sign_put("inputs/u/a.png", ttl_s=60, content_type="image/png", size=10)
    q = parse_qs(urlsplit(signed.url).query)
    exp, sig = int(q["exp"][0]), q["sig"][0]
    assert signed.method == "PUT" and signed.headers == {"Content-Type": "image/png"}
    assert storage.verify("PUT", "inputs/u/a.png", exp, sig, "image/png", "10")
    assert not storage.verify("PUT", "inputs/u/a.png", exp, sig, "image/png", "11")
    assert not storage.verify("PUT", "inputs/u/a.png", exp, sig, "image/gif", "10")


async def test_list_and_delete_a_folder(storage: LocalStorage) -> None:
    for key in ("outputs/j/main/1/9-0.png", "outputs/j/main/2/9-0.png", "outputs/jj/main/1/x.png"):
        await storage.put_bytes(key, b"abc", "image/png")
    listed = await storage.list("outputs/j")
    assert [o.key for o in listed] == ["outputs/j/main/1/9-0.png", "outputs/j/main/2/9-0.png"]
    assert listed[0].bytes == 3 and listed[0].modified_at is not None
    assert await storage.list("outputs/none") == []
    assert await storage.delete_prefix("outputs/j/main/1") == 1
    assert [o.key for o in await storage.list("outputs")] == [
        "outputs/j/main/2/9-0.png",
        "outputs/jj/main/1/x.png",
    ]
    assert not (storage.root / "outputs" / "j" / "main" / "1").exists()


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_write_survives_its_folder_pruned_by_another_gateways_delete(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch, streamed: bool
) -> None:
    # Gateways sharing one directory: deleting the last preview prunes previews/ just
    # after this write made previews/<job>/ and before it created its temporary file.
    await storage.put_bytes("previews/a/latest.png", b"a", "image/png")
    real = tempfile.mkstemp
    pruned: list[Path] = []

    def mkstemp(*, dir: Path, prefix: str) -> tuple[int, str]:
        if not pruned:
            pruned.append(dir)
            shutil.rmtree(storage.root / "previews")
        return real(dir=dir, prefix=prefix)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    if streamed:
        await storage.put_stream("previews/b/latest.png", chunks(b"b"), "image/png")
    else:
        await storage.put_bytes("previews/b/latest.png", b"b", "image/png")
    assert pruned
    assert await storage.get_bytes("previews/b/latest.png") == b"b"


async def test_a_file_opened_for_serving_keeps_its_bytes_when_replaced_or_deleted(
    storage: LocalStorage,
) -> None:
    await storage.put_bytes("previews/j/latest.png", b"first", "image/png")
    opened = await storage.open_sized("previews/j/latest.png")
    assert opened is not None
    size, chunks = opened
    # Another gateway replaces the preview, then its sweep deletes it.
    await storage.put_bytes("previews/j/latest.png", b"second, longer", "image/png")
    await storage.delete("previews/j/latest.png")
    assert (size, b"".join([c async for c in chunks])) == (5, b"first")
    assert await storage.open_sized("previews/j/latest.png") is None
