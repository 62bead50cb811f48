"""Image parameters given as https URLs: fetched through the SSRF guard with the limits
of an upload, then stored as one."""

from __future__ import annotations

import httpx

from comfygate.errors import InvalidUpload
from comfygate.storage.uploads import Uploads

CHUNK = 64 * 1024


class RemoteImageFetcher:
    """``client`` must be a :func:`comfygate.ssrf.guarded_client`: it checks the
    address of every hop, and never follows a redirect itself."""

    def __init__(self, client: httpx.AsyncClient, uploads: Uploads, *, max_redirects: int) -> None:
        self.client = client
        self.uploads = uploads
        self.max_redirects = max_redirects

    async def fetch(self, owner_id: str, url: str) -> str:
        try:
            return await self._fetch(owner_id, url)
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
            raise InvalidUpload(f"the image URL could not be fetched: {reason}") from None

    async def _fetch(self, owner_id: str, url: str) -> str:
        current = httpx.URL(url)
        for _ in range(self.max_redirects + 1):
            if current.scheme != "https":
                raise InvalidUpload(f"image URLs must be https, not {current.scheme}://")
            async with self.client.stream("GET", current) as response:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    # Against the URL as given: the guard sent the request to an address.
                    current = current.join(location)
                    continue
                if response.status_code != 200:
                    raise InvalidUpload(f"the image URL answered {response.status_code}")
                data = await self._read(response)
            # The bytes decide what the picture is, not the server's name or type for it.
            info = await self.uploads.put_direct(owner_id, data)
            return str(info["id"])
        raise InvalidUpload(f"the image URL redirected more than {self.max_redirects} times")

    async def _read(self, response: httpx.Response) -> bytes:
        """The body, refused as soon as it is larger than an upload may be."""
        limit = self.uploads.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise InvalidUpload(f"the image is larger than {limit} bytes")
        data = bytearray()
        async for chunk in response.aiter_bytes(CHUNK):
            data += chunk
            if len(data) > limit:
                raise InvalidUpload(f"the image is larger than {limit} bytes")
        return bytes(data)
