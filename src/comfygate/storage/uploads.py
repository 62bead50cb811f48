"""Checked uploads: declared, sent to a signed URL, then decoded and measured.

An upload is two objects: ``inputs/{id}/upload.json`` (who, what, state) and the file
``inputs/{id}/{name}``. Only a completed upload of the same owner can feed a job.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

from comfygate.clock import Clock
from comfygate.errors import InvalidUpload, NotFound
from comfygate.ids import is_uuid, new_id
from comfygate.jobs.ports import ResolvedUpload
from comfygate.storage.base import SignedRequest, Storage

FORMAT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    formats: tuple[str, ...]
    url_ttl_s: int


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "upload"
    return base[:100]


def _field_error(field: str, message: str, keyword: str = "invalid") -> InvalidUpload:
    return InvalidUpload(
        message, details=[{"path": f"/{field}", "message": message, "keyword": keyword}]
    )


class Uploads:
    def __init__(self, storage: Storage, limits: UploadLimits, clock: Clock) -> None:
        self.storage = storage
        self.limits = limits
        self.clock = clock

    @property
    def content_types(self) -> list[str]:
        return [FORMAT_TYPES[f] for f in self.limits.formats if f in FORMAT_TYPES]

    async def create(
        self, owner_id: str, *, filename: str, content_type: str, size: int
    ) -> tuple[str, SignedRequest]:
        if content_type not in self.content_types:
            raise _field_error(
                "content_type", f"content_type must be one of {self.content_types}", "enum"
            )
        if size <= 0 or size > self.limits.max_bytes:
            raise _field_error(
                "bytes", f"bytes must be between 1 and {self.limits.max_bytes}", "maximum"
            )
        upload_id = new_id()
        key = f"inputs/{upload_id}/{safe_filename(filename)}"
        meta = {
            "id": upload_id,
            "owner_id": owner_id,
            "filename": safe_filename(filename),
            "content_type": content_type,
            "bytes": size,
            "key": key,
            "status": "pending",
            "created_at": self.clock.now().isoformat(),
        }
        await self._save(upload_id, meta)
        signed = self.storage.sign_put(
            key, ttl_s=self.limits.url_ttl_s, content_type=content_type, size=size
        )
        return upload_id, signed

    async def complete(self, owner_id: str, upload_id: str) -> dict[str, Any]:
        meta = await self._load(owner_id, upload_id)
        if meta["status"] == "completed":
            return _public(meta)
        info = await self.storage.stat(meta["key"])
        if info is None:
            raise InvalidUpload("no bytes were sent to the upload URL")
        if info.bytes > min(meta["bytes"], self.limits.max_bytes):
            await self.storage.delete(meta["key"])
            raise _field_error(
                "bytes", f"the file is larger than the declared {meta['bytes']} bytes", "maximum"
            )
        data = await self.storage.get_bytes(meta["key"])
        checked = await asyncio.to_thread(self._check_image, data)
        meta.update(checked, status="completed")
        await self._save(upload_id, meta)
        return _public(meta)

    async def put_direct(
        self, owner_id: str, *, filename: str, content_type: str | None, data: bytes
    ) -> dict[str, Any]:
        """The multipart shortcut: the same checks as create + send + complete."""
        checked = await asyncio.to_thread(self._check_image, data)
        upload_id, _ = await self.create(
            owner_id, filename=filename, content_type=checked["content_type"], size=len(data)
        )
        meta = await self._load(owner_id, upload_id)
        await self.storage.put_bytes(meta["key"], data, checked["content_type"])
        meta.update(checked, status="completed")
        await self._save(upload_id, meta)
        return _public(meta)

    async def resolve(self, owner_id: str, upload_id: str) -> ResolvedUpload | None:
        try:
            meta = await self._load(owner_id, upload_id)
        except NotFound:
            return None
        if meta["status"] != "completed":
            return None
        return ResolvedUpload(key=meta["key"], filename=meta["filename"], sha256=meta["sha256"])

    def _check_image(self, data: bytes) -> dict[str, Any]:
        if len(data) > self.limits.max_bytes:
            raise _field_error(
                "bytes", f"the file is larger than {self.limits.max_bytes} bytes", "maximum"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:
                    fmt = img.format or ""
                    width, height = img.size
                    if fmt not in self.limits.formats:
                        raise _field_error(
                            "file",
                            f"format {fmt or 'unknown'} is not allowed; "
                            f"use one of {list(self.limits.formats)}",
                            "format",
                        )
                    if width * height > self.limits.max_pixels:
                        raise _field_error(
                            "file",
                            f"{width}x{height} exceeds {self.limits.max_pixels} pixels",
                            "maximum",
                        )
                    img.load()
        except InvalidUpload:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _field_error("file", "the image has too many pixels", "maximum") from None
        except Exception:
            raise _field_error("file", "the file is not a readable image", "format") from None
        return {
            "content_type": FORMAT_TYPES[fmt],
            "width": width,
            "height": height,
            "sha256": hashlib.sha256(data).hexdigest(),
        }

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
