"""Job values. Frozen: changes are new values made by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    #: accepted, waiting for a backend
    QUEUED = "queued"
    #: leased to an agent, which runs it on a backend
    RUNNING = "running"
    #: outputs committed (terminal)
    SUCCEEDED = "succeeded"
    #: failed for good (terminal)
    FAILED = "failed"
    #: cancel requested while running; the agent is stopping the prompt
    CANCELING = "canceling"
    #: stopped on request (terminal)
    CANCELED = "canceled"
    #: waited in the queue past its time to live (terminal)
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})
#: states in which an agent holds a lease and may write through the fence
LEASED = frozenset({JobStatus.RUNNING, JobStatus.CANCELING})


@dataclass(frozen=True, kw_only=True)
class Progress:
    value: float = 0.0
    nodes_done: int = 0
    nodes_total: int = 0
    current_node: str | None = None
    step: int | None = None
    steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "nodes_done": self.nodes_done,
            "nodes_total": self.nodes_total,
            "current_node": self.current_node,
            "step": self.step,
            "steps": self.steps,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Progress:
        if not data:
            return cls()
        return cls(
            value=float(data.get("value", 0.0)),
            nodes_done=int(data.get("nodes_done", 0)),
            nodes_total=int(data.get("nodes_total", 0)),
            current_node=data.get("current_node"),
            step=data.get("step"),
            steps=data.get("steps"),
        )


@dataclass(frozen=True, kw_only=True)
class JobFailure:
    """Why a job failed, as clients see it: no tracebacks, no server paths."""

    code: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    details: Any = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "node_id": self.node_id,
            "class_type": self.class_type,
        }
        if self.details is not None:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> JobFailure | None:
        if not data:
            return None
        return cls(
            code=data["code"],
            message=data["message"],
            node_id=data.get("node_id"),
            class_type=data.get("class_type"),
            details=data.get("details"),
        )


@dataclass(frozen=True, kw_only=True)
class OutputFile:
    """One output object, as the agent stored it and the manifest lists it."""

    key: str
    kind: str  # image | video | audio | text | file
    content_type: str
    bytes: int
    sha256: str
    node_id: str
    stage: str = "main"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "content_type": self.content_type,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "node_id": self.node_id,
            "stage": self.stage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputFile:
        return cls(
            key=data["key"],
            kind=data["kind"],
            content_type=data["content_type"],
            bytes=int(data["bytes"]),
            sha256=data["sha256"],
            node_id=str(data["node_id"]),
            stage=data.get("stage", "main"),
        )


@dataclass(frozen=True, kw_only=True)
class InputFile:
    """An image input the agent uploads to its backend before submitting.

    ``key`` is the object in storage; ``bindings`` are the (node id, input name) pairs
    whose value becomes the name ComfyUI's ``/upload/image`` returns.
    """

    key: str
    filename: str
    bindings: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "filename": self.filename,
            "bindings": [list(b) for b in self.bindings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputFile:
        return cls(
            key=data["key"],
            filename=data["filename"],
            bindings=tuple((str(n), str(i)) for n, i in data["bindings"]),
        )


@dataclass(frozen=True, kw_only=True)
class Job:
    id: str
    owner_id: str
    workflow: str
    workflow_version: str
    pool: str
    status: JobStatus
    params: dict[str, Any]
    metadata: dict[str, Any]
    inputs: tuple[InputFile, ...] = ()
    priority: int = 5
    #: its place among the pool's queued jobs of one priority (fair share)
    fair_key: int = 0
    attempts: int = 0
    max_attempts: int = 3
    timeout_s: float = 600.0
    retry_on_timeout: bool = False
    progress: Progress = field(default_factory=Progress)
    error: JobFailure | None = None
    outputs: tuple[OutputFile, ...] = ()
    last_seq: int = 0
    retry_of: str | None = None
    lease_owner: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    not_before: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: when the retention sweep deleted its output files (the job itself stays a while)
    outputs_expired_at: datetime | None = None
    #: set by DELETE: the row is a tombstone, its files and parameters are gone
    deleted_at: datetime | None = None
    #: where its events are sent (``WebhookTarget.to_dict``), if anywhere
    webhook: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status.terminal


@dataclass(frozen=True, kw_only=True)
class NewJob:
    """What the service hands the store to create a job (status ``queued``)."""

    id: str
    owner_id: str
    workflow: str
    workflow_version: str
    pool: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    inputs: tuple[InputFile, ...]
    priority: int
    max_attempts: int
    timeout_s: float
    expires_at: datetime | None
    retry_of: str | None = None
    retry_on_timeout: bool = False
    webhook: dict[str, Any] | None = None
    #: the model files its graph names: only a backend that has them all may lease it
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueHead:
    """The first jobs of a pool in claim order, as one look sees them."""

    #: how many can be claimed now (counted up to the look's depth)
    claimable: int
    #: the model files each of those names (in claim order), for the ones that avoid no
    #: backend: a backend whose ComfyUI has them all may take it
    needs: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Lessee:
    """An agent asking for work: its backend, the pools it serves, its free slots and
    the model files its ComfyUI lists (None: not reported, every job fits)."""

    agent_id: str
    backend: str
    pools: tuple[str, ...]
    capacity: int | None = None
    models: frozenset[str] | None = None


@dataclass(frozen=True, kw_only=True)
class Claim:
    """What one claim asks of a pool's queue on behalf of a waiting lessee."""

    pool: str
    agent_id: str
    backend: str
    #: the new attempt's prompt id, recorded before its POST
    prompt_id: str
    lease_token: str
    lease_ttl_s: float
    #: a backend whose failed jobs it skips for a while (their retries prefer another)
    avoid: str | None = None
    #: with it the lease is recorded, and a retry of the lease call gets it back
    request_id: str | None = None
    #: the model files its ComfyUI has (None: every job fits)
    models: frozenset[str] | None = None


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """One row of a job's timeline; ``seq`` counts from 1 per job."""

    job_id: str
    seq: int
    type: str
    data: dict[str, Any]
    at: datetime


@dataclass(frozen=True, kw_only=True)
class Attempt:
    job_id: str
    attempt: int
    backend: str
    prompt_id: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = None


@dataclass(frozen=True, kw_only=True)
class Lease:
    """What an agent gets when it leases a job: everything it needs, nothing to look up.

    ``prompt_key`` is the patched graph in storage (``jobs/{id}/prompt.json``), which
    ``graph`` usually carries already; the agent never reads ``workflows/``.
    """

    job_id: str
    lease_token: str
    attempt: int
    prompt_id: str
    prompt_key: str
    inputs: tuple[InputFile, ...]
    outputs_prefix: str
    timeout_s: float
    #: a timeout counts as retryable for this job
    retry_on_timeout: bool = False
    lease_ttl_s: float
    heartbeat_s: float
    #: the graph itself, when the gateway had it at hand; None: read ``prompt_key``
    graph: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class HeartbeatReply:
    cancel: bool


@dataclass(frozen=True, kw_only=True)
class WorkflowVersion:
    version: str
    name: str
    graph: dict[str, Any]
    contract: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class IdempotencyRecord:
    owner_id: str
    key: str
    fingerprint: str
    status_code: int | None
    body: dict[str, Any] | None
    job_id: str | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class KeyReservation:
    """The in-flight row one request holds for its idempotency key, named by the time it
    was reserved: a request that took the key over from a dead one reserves it anew, so
    the first request, if it was only slow, can no longer make its job."""

    owner_id: str
    key: str
    reserved_at: datetime


@dataclass(frozen=True, kw_only=True)
class LiveEvent:
    """What the event bus carries to SSE streams: a stored event (``seq`` set) or a
    transient one (``progress``, ``preview``: ``seq`` is None)."""

    job_id: str
    owner_id: str
    type: str
    data: dict[str, Any]
    seq: int | None = None
    #: the job has a webhook: only then may its transition have written an outbox row
    webhook: bool = False
