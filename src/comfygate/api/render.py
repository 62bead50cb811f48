"""Jobs as clients see them: the vocabulary of Comfy Org's API v2 job contract."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from comfygate.jobs.model import Job, JobFailure, JobStatus, OutputFile, Progress
from comfygate.storage.base import Storage


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start).total_seconds() * 1000)


class Renderer:
    def __init__(self, storage: Storage, url_ttl_s: int) -> None:
        self.storage = storage
        self.url_ttl_s = url_ttl_s

    def asset(self, output: OutputFile) -> dict[str, Any]:
        signed = self.storage.sign_get(output.key, ttl_s=self.url_ttl_s)
        return {
            "kind": output.kind,
            "content_type": output.content_type,
            "bytes": output.bytes,
            "sha256": output.sha256,
            "node_id": output.node_id,
            "stage": output.stage,
            "url": signed.url,
            "url_expires_at": signed.expires_at.isoformat(),
        }

    def job(self, job: Job, *, queue_position: int | None = None) -> dict[str, Any]:
        base = f"/v1/jobs/{job.id}"
        return {
            "id": job.id,
            "status": job.status.value,
            "workflow": job.workflow,
            "workflow_version": job.workflow_version,
            "params": job.params,
            "metadata": job.metadata,
            "progress": job.progress.to_dict(),
            "queue_position": queue_position if job.status is JobStatus.QUEUED else None,
            "attempts": job.attempts,
            "metrics": {
                "queue_ms": _ms(job.created_at, job.started_at),
                "execution_ms": _ms(job.started_at, job.finished_at),
            },
            "error": job.error.to_dict() if job.error else None,
            "outputs": [self.asset(o) for o in job.outputs],
            "retry_of": job.retry_of,
            "urls": {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"},
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "updated_at": _iso(job.updated_at),
            #: set once the retention sweep deleted the files: their links answer 410
            "outputs_expired_at": _iso(job.outputs_expired_at),
        }

    def job_at(self, job: Job, data: dict[str, Any]) -> dict[str, Any]:
        """The job as a stored ``status`` event saw it."""
        then = replace(
            job,
            status=JobStatus(data["status"]),
            attempts=data.get("attempts", job.attempts),
            error=JobFailure.from_dict(data.get("error")),
            progress=Progress.from_dict(data.get("progress")),
            outputs=tuple(OutputFile.from_dict(o) for o in data.get("outputs") or ()),
            started_at=_parse(data.get("started_at")),
            finished_at=_parse(data.get("finished_at")),
        )
        return self.job(then)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
