"""The lease the worker tests run under."""

from __future__ import annotations

from comfygate.jobs.model import Lease

LEASE = Lease(
    job_id="01a00000-0000-7000-8000-000000000000",
    lease_token="tok",
    attempt=1,
    prompt_id="p",
    prompt_key="jobs/j/prompt.json",
    inputs=(),
    outputs_prefix="outputs/j/main/1",
    timeout_s=60.0,
    lease_ttl_s=30.0,
    heartbeat_s=10.0,
)
