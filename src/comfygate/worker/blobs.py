"""What an agent reads and writes besides the protocol: the job's graph and inputs in,
its outputs out. In-process agents use the gateway's storage directly; a remote agent
has no storage access and goes through the gateway, or puts its outputs to presigned
URLs the gateway hands out when storage is S3 (``transport/http.py``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable

from comfygate.jobs.model import Lease
from comfygate.storage.base import Storage


class WorkerBlobs(ABC):
    @abstractmethod
    async def read(self, lease: Lease, key: str) -> bytes:
        """The leased job's graph (``lease.prompt_key``) or one of its input files."""

    @abstractmethod
    async def write(
        self, lease: Lease, name: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[str, int, str]:
        """Store an output as ``name`` under the attempt's prefix, without holding it
        whole; returns (key, bytes, sha256 hex)."""


class StorageBlobs(WorkerBlobs):
    """The embedded mode: the agent shares the gateway's storage."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    async def read(self, lease: Lease, key: str) -> bytes:
        return await self._storage.get_bytes(key)

    async def write(
        self, lease: Lease, name: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> tuple[str, int, str]:
        key = f"{lease.outputs_prefix}/{name}"
        size, sha = await self._storage.put_stream(key, chunks, content_type)
        return key, size, sha
