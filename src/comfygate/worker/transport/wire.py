"""The worker protocol's JSON: one place both the gateway's routes and HttpTransport use."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from comfygate.jobs.model import InputFile, Lease, Lessee

PREFIX = "/worker/v1"
#: the raw-body calls (preview, file reads and output uploads) carry the token here
LEASE_HEADER = "X-Lease-Token"
#: a lease's ``outputs_upload``: "presigned" (ask …/outputs/{name}/url, PUT to storage,
#: a large file in parts joined by …/outputs/{name}/parts/complete) or "gateway"
#: (PUT …/outputs/{name} to the gateway)
PRESIGNED = "presigned"


def lease_to_dict(lease: Lease) -> dict[str, Any]:
    base = f"{PREFIX}/jobs/{lease.job_id}"
    body: dict[str, Any] = {
        "job_id": lease.job_id,
        "lease_token": lease.lease_token,
        "attempt": lease.attempt,
        "prompt_id": lease.prompt_id,
        "prompt_key": lease.prompt_key,
        "inputs": [i.to_dict() for i in lease.inputs],
        "outputs_prefix": lease.outputs_prefix,
        "timeout_s": lease.timeout_s,
        "retry_on_timeout": lease.retry_on_timeout,
        "lease_ttl_s": lease.lease_ttl_s,
        "heartbeat_s": lease.heartbeat_s,
        # Where the agent reads the graph and inputs: gateway paths today; a storage
        # that can presign may hand out absolute URLs here instead.
        "urls": {
            "prompt": f"{base}/prompt",
            "inputs": [f"{base}/inputs/{n}" for n in range(len(lease.inputs))],
        },
    }
    if lease.graph is not None:
        body["graph"] = lease.graph  # the agent need not ask for urls.prompt
    return body


def lease_from_dict(data: dict[str, Any]) -> Lease:
    return Lease(
        job_id=data["job_id"],
        lease_token=data["lease_token"],
        attempt=int(data["attempt"]),
        prompt_id=data["prompt_id"],
        prompt_key=data["prompt_key"],
        inputs=tuple(InputFile.from_dict(i) for i in data["inputs"]),
        outputs_prefix=data["outputs_prefix"],
        timeout_s=float(data["timeout_s"]),
        retry_on_timeout=bool(data["retry_on_timeout"]),
        lease_ttl_s=float(data["lease_ttl_s"]),
        heartbeat_s=float(data["heartbeat_s"]),
        graph=data["graph"] if isinstance(data.get("graph"), dict) else None,
    )


def output_path(job_id: str, name: str) -> str:
    return f"{PREFIX}/jobs/{job_id}/outputs/{name}"


def models_digest(models: Iterable[str]) -> str:
    """The SHA-256 of the sorted model file names, one per line: a lease call names its
    backend's list by it, and sends the list itself only to a gateway that lacks it."""
    return hashlib.sha256("\n".join(sorted(models)).encode()).hexdigest()


def lessee_to_dict(lessee: Lessee, *, with_models: bool = True) -> dict[str, Any]:
    """The lease call's description of the agent: pools, free slots, model files (by
    digest, and the names too unless ``with_models`` is false)."""
    body: dict[str, Any] = {
        "agent_id": lessee.agent_id,
        "backend": lessee.backend,
        "pools": list(lessee.pools),
        "capacity": lessee.capacity,
    }
    if lessee.models is not None:
        body["models_digest"] = models_digest(lessee.models)
        if with_models:
            body["models"] = sorted(lessee.models)
    return body


def file_url(lease: Lease, key: str) -> str:
    """The gateway path of the graph or an input of ``lease``; KeyError for others."""
    base = f"{PREFIX}/jobs/{lease.job_id}"
    if key == lease.prompt_key:
        return f"{base}/prompt"
    for n, item in enumerate(lease.inputs):
        if item.key == key:
            return f"{base}/inputs/{n}"
    raise KeyError(key)
