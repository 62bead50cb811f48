"""The embedded mode's transport: direct calls into the gateway's WorkerGate."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from comfygate.jobs.model import HeartbeatReply, JobFailure, Lease, Lessee, OutputFile, Progress
from comfygate.jobs.worker_gate import WorkerGate
from comfygate.worker.transport.base import WorkerTransport


class InProcessTransport(WorkerTransport):
    def __init__(self, gate: WorkerGate) -> None:
        self._gate = gate

    async def lease(
        self, lessee: Lessee, *, wait_s: float, wanted: Callable[[], bool] = lambda: True
    ) -> Lease | None:
        return await self._gate.lease(lessee, wait_s=wait_s, wanted=wanted)

    async def adopt(self, *, agent_id: str, backend: str) -> list[Lease]:
        return await self._gate.adopt(agent_id=agent_id, backend=backend)

    async def heartbeat(self, lease: Lease) -> HeartbeatReply:
        return await self._gate.heartbeat(lease)

    async def wait_cancel(self, lease: Lease, timeout_s: float) -> bool:
        return await self._gate.wait_cancel(lease, timeout_s)

    async def progress(self, lease: Lease, progress: Progress) -> HeartbeatReply:
        return await self._gate.progress(lease, progress)

    async def preview(
        self, lease: Lease, *, node_id: str | None, content_type: str, data: bytes
    ) -> None:
        await self._gate.preview(lease, node_id=node_id, content_type=content_type, data=data)

    async def complete(
        self, lease: Lease, outputs: Sequence[OutputFile], progress: Progress | None = None
    ) -> None:
        await self._gate.complete(lease, outputs, progress)

    async def fail(self, lease: Lease, failure: JobFailure, *, retryable: bool) -> None:
        await self._gate.fail(lease, failure, retryable=retryable)

    async def canceled(self, lease: Lease) -> None:
        await self._gate.canceled(lease)
