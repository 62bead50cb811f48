"""The storage port. Keys are ``/``-separated relative paths (DESIGN.md, object layout)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\- ()]*)*$")


class InvalidKey(ValueError):
    """A storage key that could escape its root or is not plain."""


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    bytes: int
    content_type: str
    modified_at: datetime | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A request a client may make without credentials until ``expires_at``."""

    method: str
    url: str
    expires_at: datetime
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SignedParts:
    """A multipart upload begun in storage: part ``n`` (from 1) is ``sizes[n - 1]``
    bytes, sent with ``parts[n - 1]``; ``finish_parts`` joins them into the object."""

    upload_id: str
    parts: tuple[SignedRequest, ...]
    sizes: tuple[int, ...]


class PartsRefused(ValueError):
    """Storage would not join the parts: a wrong ETag, a missing or small part, or an
    upload that is no longer open (``code`` is storage's word for it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class Storage(ABC):
    @property
    def url_origin(self) -> str | None:
        """The origin signed URLs point at when it is not the gateway's own (for the CSP)."""
        return None

    @property
    def direct_uploads(self) -> bool:
        """Whether remote agents upload outputs to presigned URLs (``sign_put``) rather
        than through the gateway."""
        return False

    @abstractmethod
    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    @abstractmethod
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[int, str]:
        """Store a stream without holding it whole; returns (bytes, sha256 hex)."""

    @abstractmethod
    async def get_bytes(self, key: str) -> bytes:
        """A small object whole (JSON documents, inputs for the agent). FileNotFoundError."""

    @abstractmethod
    def open(self, key: str) -> AsyncIterator[bytes]:
        """Stream an object in chunks. FileNotFoundError when absent."""

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    async def check(self) -> None:
        """Raise OSError unless objects can be written and read now (readiness)."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix/`` (a folder), in key order."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete a folder of objects; returns how many were deleted."""
        found = await self.list(prefix)
        for info in found:
            await self.delete(info.key)
        return len(found)

    @abstractmethod
    def sign_get(self, key: str, *, ttl_s: int) -> SignedRequest: ...

    @abstractmethod
    def sign_put(self, key: str, *, ttl_s: int, content_type: str, size: int) -> SignedRequest:
        """A PUT of ``size`` bytes (the declared length: a longer body is refused; S3
        signs it as the Content-Length) of ``content_type``."""

    # Multipart uploads, for objects larger than one PUT takes: only a storage with
    # ``direct_uploads`` has them, so the rest never reach these.

    async def begin_parts(
        self, key: str, *, ttl_s: int, content_type: str, sizes: Sequence[int]
    ) -> SignedParts:
        """Start a multipart upload of ``key`` and sign one PUT per part, each for its
        length (``storage.parts.plan_parts`` cuts them)."""
        raise NotImplementedError(f"{type(self).__name__} has no multipart uploads")

    async def finish_parts(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        """Join the parts, given each one's ETag in order; PartsRefused when storage
        will not."""
        raise NotImplementedError(f"{type(self).__name__} has no multipart uploads")

    async def abort_parts(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload and its parts; one already gone is fine."""
        raise NotImplementedError(f"{type(self).__name__} has no multipart uploads")

    async def abort_open_parts(self, prefix: str, *, begun_before: datetime) -> int:
        """Drop the unfinished multipart uploads under ``prefix`` begun before then (an
        agent that died mid-upload leaves one, billed, until someone does); how many."""
        return 0

    async def signed_url(self, key: str, ttl_s: int) -> tuple[str, datetime]:
        signed = self.sign_get(key, ttl_s=ttl_s)
        return signed.url, signed.expires_at
