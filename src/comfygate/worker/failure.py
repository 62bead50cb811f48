"""How an agent reports a job's error to the gateway."""

from __future__ import annotations

import contextlib

from comfygate.errors import ComfygateError, JobError, JobTimeout, OutOfMemory
from comfygate.jobs.model import JobFailure, Lease
from comfygate.worker.ports import ComfyBackend
from comfygate.worker.transport.base import WorkerTransport


async def report_failure(
    comfy: ComfyBackend, transport: WorkerTransport, lease: Lease, exc: JobError
) -> None:
    """Fail the attempt, retryable as the error (or the contract, for a timeout) says."""
    if isinstance(exc, OutOfMemory):
        # The next prompt here must not meet the same full memory.
        with contextlib.suppress(ComfygateError):
            await comfy.free()
    failure = JobFailure(
        code=exc.code,
        message=exc.message,
        node_id=exc.node_id,
        class_type=exc.class_type,
        details=exc.details,
    )
    retryable = exc.retryable or (isinstance(exc, JobTimeout) and lease.retry_on_timeout)
    await transport.fail(lease, failure, retryable=retryable)
