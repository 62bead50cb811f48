"""What every transition tells the world: its status event, and for a failure the
job's ``error.json``. Shared by the worker gate and the rescuer."""

from __future__ import annotations

import json

from comfygate.jobs.keys import error_key, manifest_key
from comfygate.jobs.model import Job, JobFailure, LiveEvent
from comfygate.jobs.ports import Blobs, EventSink
from comfygate.jobs.snapshot import status_data


async def publish_status(events: EventSink, job: Job) -> None:
    await events.publish(
        LiveEvent(
            job_id=job.id,
            owner_id=job.owner_id,
            type="status",
            data=status_data(job),
            seq=job.last_seq,
            webhook=job.webhook is not None,
        )
    )


async def write_manifest(blobs: Blobs, job: Job) -> None:
    """The committed outputs as a document. Idempotent: after a crash between the
    commit and this write, the sweeper writes it again from the same row."""
    manifest = {"job_id": job.id, "outputs": [o.to_dict() for o in job.outputs]}
    await blobs.put_bytes(manifest_key(job.id), json.dumps(manifest).encode(), "application/json")


async def write_error(blobs: Blobs, job_id: str, failure: JobFailure, attempt: int) -> None:
    record = {**failure.to_dict(), "attempt": attempt}
    await blobs.put_bytes(error_key(job_id), json.dumps(record).encode(), "application/json")
