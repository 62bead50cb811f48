"""A local S3-compatible server (moto) for the storage tests, one per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import botocore.session
import httpx
import pytest

from comfygate.clock import Clock
from comfygate.config import S3Settings, parse_s3_url
from comfygate.storage.s3 import S3Storage
from tests.services import unavailable

BUCKET = "comfygate-test"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    def settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.endpoint_url,
            region="us-east-1",
            access_key_id="test",
            secret_access_key="test",
        )

    def fresh_url(self) -> str:
        """A ``storage_url`` under a prefix of its own: tests share the bucket, not keys."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:12]}"

    def storage(self, clock: Clock) -> S3Storage:
        return S3Storage.from_settings(self.fresh_url(), self.settings(), clock)

    def open_uploads(self, storage_url: str) -> list[str]:
        """Keys of the multipart uploads under a storage URL's prefix that were begun
        and neither completed nor aborted."""
        bucket, prefix = parse_s3_url(storage_url)
        s3 = self.settings()
        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name=s3.region,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key,
        )
        listed = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return [str(upload["Key"]) for upload in listed.get("Uploads", [])]

    def overrides(self) -> dict[str, object]:
        """Gateway settings that put its storage in this server."""
        return {"storage_url": self.fresh_url(), "s3": self.settings().model_dump()}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # A real content type: moto would take a form-encoded body for form fields.
        created = httpx.put(
            f"{endpoint}/{BUCKET}", headers={"Content-Type": "application/xml"}, timeout=10
        )
        created.raise_for_status()
    except Exception as exc:
        unavailable("S3 (moto)", f"the moto S3 server cannot start here: {exc!r}")
    try:
        yield S3Server(endpoint, BUCKET)
    finally:
        server.stop()
