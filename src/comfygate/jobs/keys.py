"""Where a job's files live in storage, and the names of its doorbells: one place
for every key, so the service, the worker gate and the API cannot drift apart."""

from __future__ import annotations

import re

#: output names the agent picks: ``{node}-{index}.{ext}``, never a path (use fullmatch)
OUTPUT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def request_key(job_id: str) -> str:
    """The validated request, as accepted."""
    return f"jobs/{job_id}/request.json"


def prompt_key(job_id: str) -> str:
    """The patched graph the job runs; editing ``workflows/`` never changes it."""
    return f"jobs/{job_id}/prompt.json"


def manifest_key(job_id: str) -> str:
    """Written only after the outputs' commit."""
    return f"jobs/{job_id}/output.json"


def error_key(job_id: str) -> str:
    return f"jobs/{job_id}/error.json"


def job_prefix(job_id: str) -> str:
    """The job's own documents: request, prompt, manifest, error."""
    return f"jobs/{job_id}"


def outputs_root(job_id: str) -> str:
    """Every attempt's outputs of the job."""
    return f"outputs/{job_id}"


def previews_prefix(job_id: str) -> str:
    return f"previews/{job_id}"


def outputs_prefix(job_id: str, attempt: int, stage: str = "main") -> str:
    """Attempt-scoped: a retried attempt never overwrites what an earlier one wrote."""
    return f"outputs/{job_id}/{stage}/{attempt}"


def preview_key(job_id: str, ext: str) -> str:
    return f"previews/{job_id}/latest.{ext}"


def cancel_bell(job_id: str) -> str:
    return f"cancel:{job_id}"
