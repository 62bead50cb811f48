"""The worker protocol as an agent sees it. Every call after ``lease`` carries the token."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from comfygate.jobs.model import HeartbeatReply, JobFailure, Lease, Lessee, OutputFile, Progress


class WorkerTransport(ABC):
    @abstractmethod
    async def lease(
        self, lessee: Lessee, *, wait_s: float, wanted: Callable[[], bool] = lambda: True
    ) -> Lease | None:
        """The next job for ``lessee``, waiting up to ``wait_s``; gives up when
        ``wanted()`` is false."""

    @abstractmethod
    async def adopt(self, *, agent_id: str, backend: str) -> list[Lease]:
        """Leases this agent held before a restart, renewed: follow, do not resubmit."""

    @abstractmethod
    async def heartbeat(self, lease: Lease) -> HeartbeatReply:
        """Renew the lease; the reply says whether a cancel was requested. LeaseLost."""

    @abstractmethod
    async def wait_cancel(self, lease: Lease, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a cancel of this job; True if one was requested."""

    @abstractmethod
    async def progress(self, lease: Lease, progress: Progress) -> HeartbeatReply: ...

    @abstractmethod
    async def preview(
        self, lease: Lease, *, node_id: str | None, content_type: str, data: bytes
    ) -> None: ...

    @abstractmethod
    async def complete(
        self, lease: Lease, outputs: Sequence[OutputFile], progress: Progress | None = None
    ) -> None:
        """Commit the outputs (and the final progress). LeaseLost if the lease is gone."""

    @abstractmethod
    async def fail(self, lease: Lease, failure: JobFailure, *, retryable: bool) -> None: ...

    @abstractmethod
    async def canceled(self, lease: Lease) -> None: ...
