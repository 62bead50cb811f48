"""A ``multipart/form-data`` body that can stream its file part.

An upload read from object storage arrives as an async iterator, and holding a large
input whole in memory is what streaming is meant to avoid. Built by hand when the
client used httpx (which takes only bytes or synchronous files); the client hands it
to aiohttp as an async iterator, whose slices it times.
"""

from __future__ import annotations

import mimetypes
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Mapping

_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/]')


def safe_filename(filename: str) -> str:
    """The last path segment, without characters that break a Content-Disposition header.

    ComfyUI refuses names with directory parts (``../evil.png`` → 400), so only the
    base name is sent.
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip()
    return base if base not in ("", ".", "..") else "upload"


class MultipartBody:
    """Text fields first, then one file field; ``content_type`` carries the boundary."""

    def __init__(
        self,
        fields: Mapping[str, str],
        file_field: str,
        filename: str,
        data: bytes | AsyncIterable[bytes],
    ) -> None:
        self.boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        head = b"".join(
            self._part_header(f'name="{name}"') + value.encode() + b"\r\n"
            for name, value in fields.items()
        )
        file_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        self._head = head + self._part_header(
            f'name="{file_field}"; filename="{filename}"', file_type
        )
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._data = data

    def _part_header(self, disposition: str, content_type: str | None = None) -> bytes:
        lines = [f"--{self.boundary}", f"Content-Disposition: form-data; {disposition}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def content(self) -> bytes | AsyncIterator[bytes]:
        """Whole bytes (sent with a Content-Length) when the data is bytes, else a stream
        (sent chunked)."""
        if isinstance(self._data, bytes | bytearray):
            return self._head + bytes(self._data) + self._tail
        return self._stream(self._data)

    async def _stream(self, data: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        yield self._head
        async for chunk in data:
            if chunk:
                yield chunk
        yield self._tail
