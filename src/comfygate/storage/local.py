"""Local-directory storage: the embedded default. URLs point at the gateway's ``/files``."""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlencode

from comfygate.storage.base import ObjectInfo, SignedRequest, Storage, check_key
from comfygate.storage.signing import Signer
from comfygate.threads import Lane

CHUNK = 256 * 1024
T = TypeVar("T")

mimetypes.add_type("image/webp", ".webp")
mimetypes.add_type("text/plain", ".txt")


PROBE_KEY = "health/probe"
#: threads for file calls: a long read of a big file leaves others to the rest
FILE_THREADS = 4


#: tries to create a temporary file whose folder another writer's delete keeps removing
TEMP_TRIES = 20


def _temp_beside(target: Path) -> tuple[int, str]:
    """A new temporary file in ``target``'s folder, made if needed. A delete prunes
    folders it leaves empty (here or on another gateway sharing the directory), so
    the folder can vanish between making it and creating the file: make it again."""
    for _ in range(TEMP_TRIES - 1):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            return tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        except FileNotFoundError:
            continue
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=target.parent, prefix=".tmp-")


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


def _open_with_first_chunk(path: Path) -> tuple[BinaryIO, int, bytes]:
    f = path.open("rb")
    try:
        return f, os.fstat(f.fileno()).st_size, f.read(CHUNK)
    except BaseException:
        f.close()
        raise


def content_type_for(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class LocalStorage(Storage):
    def __init__(self, root: Path, signer: Signer, *, files_path: str = "/files") -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._signer = signer
        self._files_path = files_path
        self._lane = Lane(FILE_THREADS, "storage")

    def _off(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        return self._lane.run(functools.partial(fn, *args))

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write(self, key: str, data: bytes) -> None:
        target = self.path(key)
        fd, tmp = _temp_beside(target)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await self._off(self._write, key, data)

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[int, str]:
        target = self.path(key)
        fd, tmp = await self._off(_temp_beside, target)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    # Small writes go to the OS buffer; a thread hop per chunk costs more.
                    f.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        return size, digest.hexdigest()

    async def get_bytes(self, key: str) -> bytes:
        return await self._off(self.path(key).read_bytes)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        path = self.path(key)
        f = await self._off(_open_binary, path)
        try:
            while chunk := await self._off(f.read, CHUNK):
                yield chunk
        finally:
            f.close()

    async def open_sized(self, key: str) -> tuple[int, AsyncIterator[bytes]] | None:
        """The size and chunks of one version of the file, opened now: None when it
        is gone. A file replaced or deleted meanwhile (another gateway's preview or
        sweep) cannot make the size and the bytes disagree, nor fail mid-answer."""
        try:
            f, size, first = await self._off(_open_with_first_chunk, self.path(key))
        except FileNotFoundError:
            return None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                chunk = first
                while chunk:
                    yield chunk
                    # A short read was the end: most outputs take the one hop.
                    if len(chunk) < CHUNK:
                        break
                    chunk = await self._off(f.read, CHUNK)
            finally:
                f.close()

        return size, chunks()

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = await self._off(self.path(key).stat)
        except FileNotFoundError:
            return None
        return ObjectInfo(key=key, bytes=st.st_size, content_type=content_type_for(key))

    async def check(self) -> None:
        def probe() -> None:
            # A real write and read: a full disk or a read-only mount must show.
            self._write(PROBE_KEY, b"ok")
            if self.path(PROBE_KEY).read_bytes() != b"ok":
                raise OSError("storage returned other bytes than written")

        await self._off(probe)

    async def delete(self, key: str) -> None:
        def remove() -> None:
            path = self.path(key)
            path.unlink(missing_ok=True)
            # Empty folders are the local store's own litter: an object store has none.
            for parent in path.parents:
                if parent == self.root:
                    break
                try:
                    parent.rmdir()
                except OSError:
                    break

        await self._off(remove)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        folder = self.path(prefix.rstrip("/"))

        def walk() -> list[ObjectInfo]:
            if not folder.is_dir():
                return []
            found = []
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.name.startswith(".tmp-"):
                    try:
                        st = path.stat()
                    except FileNotFoundError:  # deleted meanwhile, maybe by another gateway
                        continue
                    key = path.relative_to(self.root).as_posix()
                    found.append(
                        ObjectInfo(
                            key=key,
                            bytes=st.st_size,
                            content_type=content_type_for(key),
                            modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
                        )
                    )
            return found

        return await self._off(walk)

    def _url(self, key: str, exp: int, sig: str) -> str:
        return f"{self._files_path}/{quote(key)}?{urlencode({'exp': exp, 'sig': sig})}"

    def sign_get(self, key: str, *, ttl_s: int) -> SignedRequest:
        exp, sig = self._signer.sign("GET", check_key(key), ttl_s=ttl_s)
        return SignedRequest("GET", self._url(key, exp, sig), self._signer.expires_at(exp))

    def sign_put(self, key: str, *, ttl_s: int, content_type: str, size: int) -> SignedRequest:
        exp, sig = self._signer.sign("PUT", check_key(key), content_type, str(size), ttl_s=ttl_s)
        url = f"{self._url(key, exp, sig)}&{urlencode({'ct': content_type, 'max': size})}"
        return SignedRequest(
            "PUT", url, self._signer.expires_at(exp), headers={"Content-Type": content_type}
        )

    def verify(self, method: str, key: str, exp: int, sig: str, *extra: str) -> bool:
        try:
            check_key(key)
        except ValueError:
            return False
        return self._signer.verify(sig, exp, method, key, *extra)
