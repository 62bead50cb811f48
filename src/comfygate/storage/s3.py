"""S3-compatible storage through obstore: several gateways share one bucket.

Clients fetch and upload with presigned URLs, so the gateway never relays the bytes.
object_store signs only the host, so presigned PUTs are signed by botocore instead, with
the declared Content-Length among the signed headers: S3 refuses a body of another
length. ``Uploads.complete`` still measures and decodes the object. An object larger
than one PUT takes goes up as a multipart upload whose parts are presigned the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import botocore.session
import obstore
from botocore.config import Config
from botocore.exceptions import ClientError
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from comfygate.clock import Clock
from comfygate.config import S3Settings, parse_s3_url
from comfygate.storage.base import (
    ObjectInfo,
    PartsRefused,
    SignedParts,
    SignedRequest,
    Storage,
    check_key,
)
from comfygate.storage.inline import is_inline
from comfygate.storage.local import PROBE_KEY, content_type_for

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config

#: parts of a multipart upload; S3 wants at least 5 MiB for every part but the last
PART_BYTES = 8 * 1024 * 1024
#: parts in flight at once: memory per upload stays at most PART_BYTES times this
PART_CONCURRENCY = 4
#: what ``open`` yields at a time
CHUNK = 256 * 1024
#: S3 refuses presigned URLs valid for longer than 7 days
MAX_TTL_S = 7 * 24 * 3600
#: objects per bulk delete request (the S3 limit)
DELETE_BATCH = 1000
#: obstore raises the builtin for a 404 (its own NotFoundError in the type stubs)
_MISSING = (NotFoundError, FileNotFoundError)


class LengthSigner:
    """What obstore lacks, through botocore: presigned PUTs whose signature covers
    Content-Type and Content-Length, GETs that set the answer's disposition, and
    multipart uploads by presigned parts. Its
    network calls block: S3Storage makes them off the event loop."""

    def __init__(self, bucket: str, prefix: str, s3: S3Settings) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        # The credentials, endpoint and region obstore uses; empty settings fall back
        # to the usual AWS environment here too.
        self._client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=s3.endpoint_url or None,
            region_name=s3.region or None,
            aws_access_key_id=s3.access_key_id or None,
            aws_secret_access_key=s3.secret_access_key or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "virtual" if s3.virtual_hosted_style else "path"},
            ),
        )

    def _object(self, key: str) -> dict[str, str]:
        return {"Bucket": self._bucket, "Key": f"{self._prefix}/{key}" if self._prefix else key}

    def put(self, key: str, *, content_type: str, size: int, ttl_s: int) -> str:
        params = {**self._object(key), "ContentType": content_type, "ContentLength": size}
        url: str = self._client.generate_presigned_url("put_object", Params=params, ExpiresIn=ttl_s)
        return url

    def get_attachment(self, key: str, *, content_type: str, ttl_s: int) -> str:
        """A presigned GET whose answer is a download of ``content_type``, whatever the
        object's metadata says: the bucket serves it as ``attachment``."""
        name = key.rsplit("/", 1)[-1]
        params = {
            **self._object(key),
            "ResponseContentType": content_type,
            "ResponseContentDisposition": f'attachment; filename="{name}"',
        }
        url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)
        return url

    def begin_parts(self, key: str, *, content_type: str) -> str:
        """A new multipart upload's id; the object gets ``content_type``."""
        created = self._client.create_multipart_upload(
            **self._object(key), ContentType=content_type
        )
        return str(created["UploadId"])

    def part(self, key: str, upload_id: str, *, number: int, size: int, ttl_s: int) -> str:
        params = {
            **self._object(key),
            "UploadId": upload_id,
            "PartNumber": number,
            "ContentLength": size,
        }
        url: str = self._client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=ttl_s
        )
        return url

    def finish_parts(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        parts = [{"ETag": etag, "PartNumber": n} for n, etag in enumerate(etags, start=1)]
        try:
            self._client.complete_multipart_upload(
                **self._object(key), UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except ClientError as exc:
            if not _refused(exc):
                raise
            error = exc.response.get("Error", {})
            raise PartsRefused(error.get("Code", "Error"), error.get("Message", "")) from None

    def open_parts(self, prefix: str) -> list[tuple[str, str, datetime]]:
        """(key, upload id, begun at) of the unfinished multipart uploads under ``prefix``."""
        full = f"{self._prefix}/{prefix}" if self._prefix else prefix
        found = []
        pages = self._client.get_paginator("list_multipart_uploads")
        for page in pages.paginate(Bucket=self._bucket, Prefix=full):
            for upload in page.get("Uploads", []):
                key = str(upload["Key"])
                if self._prefix:
                    key = key.removeprefix(f"{self._prefix}/")
                found.append((key, str(upload["UploadId"]), upload["Initiated"]))
        return found

    def abort_parts(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(**self._object(key), UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise


def _refused(exc: ClientError) -> bool:
    """S3 said no to the request itself (4xx), rather than failing to answer it."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return 400 <= int(status) < 500


class S3Storage(Storage):
    def __init__(self, store: S3Store, clock: Clock, put_signer: LengthSigner) -> None:
        self._store = store
        self._clock = clock
        self._put_signer = put_signer
        # Signing is local computation: one dummy URL tells where clients will go.
        probe = urlsplit(obstore.sign(store, "GET", PROBE_KEY, timedelta(seconds=60)))
        self._origin = f"{probe.scheme}://{probe.netloc}"

    @classmethod
    def from_settings(cls, storage_url: str, s3: S3Settings, clock: Clock) -> S3Storage:
        bucket, prefix = parse_s3_url(storage_url)
        config: S3Config = {"virtual_hosted_style_request": s3.virtual_hosted_style}
        # Empty settings leave obstore free to read the usual AWS_* environment.
        if s3.endpoint_url:
            config["endpoint"] = s3.endpoint_url
        if s3.region:
            config["region"] = s3.region
        if s3.access_key_id:
            config["access_key_id"] = s3.access_key_id
        if s3.secret_access_key:
            config["secret_access_key"] = s3.secret_access_key
        options: ClientConfig = {"allow_http": s3.endpoint_url.startswith("http://")}
        store = S3Store(bucket, prefix=prefix or None, config=config, client_options=options)
        return cls(store, clock, LengthSigner(bucket, prefix, s3))

    @property
    def url_origin(self) -> str | None:
        return self._origin

    @property
    def direct_uploads(self) -> bool:
        return True

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await obstore.put_async(
            self._store, check_key(key), data, attributes={"Content-Type": content_type}
        )

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0

        async def measured() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        # obstore buffers parts of PART_BYTES and sends them as a multipart upload
        # (aborted if the stream raises), so a large output is never held whole.
        await obstore.put_async(
            self._store,
            check_key(key),
            measured(),
            attributes={"Content-Type": content_type},
            chunk_size=PART_BYTES,
            max_concurrency=PART_CONCURRENCY,
        )
        return size, digest.hexdigest()

    async def get_bytes(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, check_key(key))
            return bytes(await result.bytes_async())
        except _MISSING:
            raise FileNotFoundError(key) from None

    async def open(self, key: str) -> AsyncIterator[bytes]:
        try:
            result = await obstore.get_async(self._store, check_key(key))
        except _MISSING:
            raise FileNotFoundError(key) from None
        async for chunk in result.stream(min_chunk_size=CHUNK):
            yield bytes(chunk)

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            meta = await obstore.head_async(self._store, check_key(key))
        except _MISSING:
            return None
        return ObjectInfo(
            key=key,
            bytes=meta["size"],
            content_type=content_type_for(key),
            modified_at=meta["last_modified"],
        )

    async def check(self) -> None:
        try:
            await self.put_bytes(PROBE_KEY, b"ok", "text/plain")
            got = await self.get_bytes(PROBE_KEY)
        except Exception as exc:  # obstore's errors are not OSErrors; readiness wants one
            raise OSError(f"S3 storage does not answer: {exc}") from exc
        if got != b"ok":
            raise OSError("storage returned other bytes than written")

    async def delete(self, key: str) -> None:
        # Some S3-compatible services answer 404; a local delete is missing_ok too.
        with contextlib.suppress(*_MISSING):
            await obstore.delete_async(self._store, check_key(key))

    async def list(self, prefix: str) -> list[ObjectInfo]:
        folder = check_key(prefix.rstrip("/"))
        found: list[ObjectInfo] = []
        async for batch in obstore.list(self._store, folder, chunk_size=1000):
            for meta in batch:
                found.append(
                    ObjectInfo(
                        key=meta["path"],
                        bytes=meta["size"],
                        content_type=content_type_for(meta["path"]),
                        modified_at=meta["last_modified"],
                    )
                )
        return sorted(found, key=lambda info: info.key)

    async def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in await self.list(prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            await obstore.delete_async(self._store, keys[start : start + DELETE_BATCH])
        return len(keys)

    def sign_get(self, key: str, *, ttl_s: int) -> SignedRequest:
        ttl = max(1, min(ttl_s, MAX_TTL_S))
        content_type = content_type_for(check_key(key))
        if is_inline(content_type):
            url = obstore.sign(self._store, "GET", key, timedelta(seconds=ttl))
        else:
            # Signed with the response headers it overrides: no one can ask the bucket
            # to show an .html or .svg output inline.
            url = self._put_signer.get_attachment(key, content_type=content_type, ttl_s=ttl)
        return SignedRequest("GET", url, self._clock.now() + timedelta(seconds=ttl))

    def sign_put(self, key: str, *, ttl_s: int, content_type: str, size: int) -> SignedRequest:
        # The client must send this Content-Type (signed too): without one, form-encoded
        # bodies are stored empty by some S3 servers. Content-Length is the browser's
        # own header, so it is not listed here, only signed.
        ttl = max(1, min(ttl_s, MAX_TTL_S))
        url = self._put_signer.put(check_key(key), content_type=content_type, size=size, ttl_s=ttl)
        return SignedRequest(
            "PUT",
            url,
            self._clock.now() + timedelta(seconds=ttl),
            headers={"Content-Type": content_type},
        )

    async def begin_parts(
        self, key: str, *, ttl_s: int, content_type: str, sizes: Sequence[int]
    ) -> SignedParts:
        ttl = max(1, min(ttl_s, MAX_TTL_S))
        expires_at = self._clock.now() + timedelta(seconds=ttl)
        check_key(key)

        def begin() -> SignedParts:
            upload_id = self._put_signer.begin_parts(key, content_type=content_type)
            urls = [
                self._put_signer.part(key, upload_id, number=n, size=size, ttl_s=ttl)
                for n, size in enumerate(sizes, start=1)
            ]
            # Parts carry no type of their own (the upload has it), but a body sent
            # without one is taken for form fields by some S3 servers.
            headers = {"Content-Type": "application/octet-stream"}
            signed = tuple(SignedRequest("PUT", url, expires_at, headers=headers) for url in urls)
            return SignedParts(upload_id, signed, tuple(sizes))

        return await asyncio.to_thread(begin)

    async def finish_parts(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        await asyncio.to_thread(self._put_signer.finish_parts, check_key(key), upload_id, etags)

    async def abort_parts(self, key: str, upload_id: str) -> None:
        await asyncio.to_thread(self._put_signer.abort_parts, check_key(key), upload_id)

    async def abort_open_parts(self, prefix: str, *, begun_before: datetime) -> int:
        signer = self._put_signer
        stale = [
            (key, upload_id)
            for key, upload_id, begun in await asyncio.to_thread(signer.open_parts, prefix)
            if begun < begun_before
        ]
        for key, upload_id in stale:
            await asyncio.to_thread(signer.abort_parts, key, upload_id)
        return len(stale)
