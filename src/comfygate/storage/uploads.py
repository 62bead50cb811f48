"""Checked uploads: declared, sent to a signed URL, then decoded and drawn anew.

An upload is ``inputs/{id}/upload.json`` (who, what, state) and, once completed, the
re-encoded picture ``inputs/{id}/image.{ext}``. The client's bytes land first in
``inputs/{id}/original`` and are deleted once checked. No key holds anything the
client chose: its file name is neither kept nor used. Only a completed upload of the
same owner can feed a job.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from comfygate.clock import Clock
from comfygate.errors import NotFound, UploadIncomplete
from comfygate.ids import is_uuid, new_id
from comfygate.jobs.ports import ResolvedUpload
from comfygate.storage.base import SignedRequest, Storage
from comfygate.storage.sanitize import (
    FORMAT_TYPES,
    CleanImage,
    ImageLimits,
    field_error,
    sanitize_image,
)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    formats: tuple[str, ...]
    url_ttl_s: int
    max_frames: int = 100

    @property
    def image(self) -> ImageLimits:
        return ImageLimits(
            max_bytes=self.max_bytes,
            max_pixels=self.max_pixels,
            max_frames=self.max_frames,
            formats=self.formats,
        )


def _original_key(upload_id: str) -> str:
    return f"inputs/{upload_id}/original"


class Uploads:
    def __init__(self, storage: Storage, limits: UploadLimits, clock: Clock) -> None:
        self.storage = storage
        self.limits = limits
        self.clock = clock

    @property
    def content_types(self) -> list[str]:
        return [FORMAT_TYPES[f] for f in self.limits.formats if f in FORMAT_TYPES]

    async def create(
        self, owner_id: str, *, content_type: str, size: int
    ) -> tuple[str, SignedRequest]:
        if content_type not in self.content_types:
            raise field_error(
                "content_type", f"content_type must be one of {self.content_types}", "enum"
            )
        if size <= 0 or size > self.limits.max_bytes:
            raise field_error(
                "bytes", f"bytes must be between 1 and {self.limits.max_bytes}", "maximum"
            )
        upload_id = new_id()
        meta = {
            "id": upload_id,
            "owner_id": owner_id,
            "content_type": content_type,
            "bytes": size,
            "status": "pending",
            "created_at": self.clock.now().isoformat(),
        }
        await self._save(upload_id, meta)
        signed = self.storage.sign_put(
            _original_key(upload_id),
            ttl_s=self.limits.url_ttl_s,
            content_type=content_type,
            size=size,
        )
        return upload_id, signed

    async def complete(self, owner_id: str, upload_id: str) -> dict[str, Any]:
        meta = await self._load(owner_id, upload_id)
        if meta["status"] == "completed":
            return _public(meta)
        original = _original_key(upload_id)
        info = await self.storage.stat(original)
        if info is None:
            raise UploadIncomplete
        if info.bytes > min(meta["bytes"], self.limits.max_bytes):
            await self.storage.delete(original)
            raise field_error(
                "bytes", f"the file is larger than the declared {meta['bytes']} bytes", "maximum"
            )
        data = await self.storage.get_bytes(original)
        try:
            clean = await asyncio.to_thread(sanitize_image, data, self.limits.image)
        finally:
            # Checked or refused, the client's own bytes are not kept.
            await self.storage.delete(original)
        return await self._store(meta, clean)

    async def put_direct(self, owner_id: str, data: bytes) -> dict[str, Any]:
        """The multipart shortcut: the same checks as create + send + complete."""
        clean = await asyncio.to_thread(sanitize_image, data, self.limits.image)
        meta = {
            "id": new_id(),
            "owner_id": owner_id,
            "bytes": len(data),
            "created_at": self.clock.now().isoformat(),
        }
        return await self._store(meta, clean)

    async def resolve(self, owner_id: str, upload_id: str) -> ResolvedUpload | None:
        try:
            meta = await self._load(owner_id, upload_id)
        except NotFound:
            return None
        if meta["status"] != "completed":
            return None
        return ResolvedUpload(key=meta["key"], filename=meta["filename"], sha256=meta["sha256"])

    async def _store(self, meta: dict[str, Any], clean: CleanImage) -> dict[str, Any]:
        name = f"image.{clean.extension}"
        key = f"inputs/{meta['id']}/{name}"
        await self.storage.put_bytes(key, clean.data, clean.content_type)
        meta.update(
            key=key,
            filename=name,
            content_type=clean.content_type,
            width=clean.width,
            height=clean.height,
            frames=clean.frames,
            stored_bytes=len(clean.data),
            sha256=hashlib.sha256(clean.data).hexdigest(),
            status="completed",
        )
        await self._save(meta["id"], meta)
        return _public(meta)

    async def _save(self, upload_id: str, meta: dict[str, Any]) -> None:
        await self.storage.put_bytes(
            f"inputs/{upload_id}/upload.json", json.dumps(meta).encode(), "application/json"
        )

    async def _load(self, owner_id: str, upload_id: str) -> dict[str, Any]:
        if not is_uuid(upload_id):
            raise NotFound(f"no upload {upload_id!r}")
        try:
            meta: dict[str, Any] = json.loads(
                await self.storage.get_bytes(f"inputs/{upload_id}/upload.json")
            )
        except FileNotFoundError:
            raise NotFound(f"no upload {upload_id!r}") from None
        if meta["owner_id"] != owner_id:
            raise NotFound(f"no upload {upload_id!r}")
        return meta


def _public(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: meta[k] for k in ("id", "content_type", "width", "height", "sha256", "bytes")}
