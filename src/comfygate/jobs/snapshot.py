"""The data a ``status`` event carries: enough to render the job as it was then."""

from __future__ import annotations

from typing import Any

from comfygate.jobs.model import Job


def status_data(job: Job) -> dict[str, Any]:
    return {
        "status": job.status.value,
        "attempts": job.attempts,
        "error": job.error.to_dict() if job.error else None,
        "progress": job.progress.to_dict(),
        "outputs": [o.to_dict() for o in job.outputs],
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
