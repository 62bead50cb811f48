"""Rows to domain values. No ORM object leaves store/."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from comfygate.jobs.model import (
    Attempt,
    IdempotencyRecord,
    InputFile,
    Job,
    JobEvent,
    JobFailure,
    JobStatus,
    OutputFile,
    Progress,
    WorkflowVersion,
)
from comfygate.jobs.webhooks import Delivery, DeliveryAttempt, DeliveryStatus


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def must_aware(value: datetime | None) -> datetime:
    result = aware(value)
    assert result is not None
    return result


def job_from_row(row: Any) -> Job:
    m = row._mapping
    return Job(
        id=m["id"],
        owner_id=m["owner_id"],
        workflow=m["workflow"],
        workflow_version=m["workflow_version"],
        pool=m["pool"],
        status=JobStatus(m["status"]),
        params=m["params"],
        metadata=m["metadata"],
        inputs=tuple(InputFile.from_dict(i) for i in m["inputs"] or ()),
        priority=m["priority"],
        fair_key=m["fair_key"],
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        timeout_s=m["timeout_s"],
        retry_on_timeout=bool(m["retry_on_timeout"]),
        progress=Progress.from_dict(m["progress"]),
        error=JobFailure.from_dict(m["error"]),
        outputs=tuple(OutputFile.from_dict(o) for o in m["outputs"] or ()),
        last_seq=m["last_seq"],
        retry_of=m["retry_of"],
        lease_owner=m["lease_owner"],
        lease_token=m["lease_token"],
        lease_expires_at=aware(m["lease_expires_at"]),
        cancel_requested_at=aware(m["cancel_requested_at"]),
        created_at=must_aware(m["created_at"]),
        updated_at=must_aware(m["updated_at"]),
        expires_at=aware(m["expires_at"]),
        not_before=aware(m["not_before"]),
        started_at=aware(m["started_at"]),
        finished_at=aware(m["finished_at"]),
        outputs_expired_at=aware(m["outputs_expired_at"]),
        deleted_at=aware(m["deleted_at"]),
        webhook=m.get("webhook"),
    )


def event_from_row(row: Any) -> JobEvent:
    m = row._mapping
    return JobEvent(
        job_id=m["job_id"], seq=m["seq"], type=m["type"], data=m["data"], at=must_aware(m["at"])
    )


def attempt_from_row(row: Any) -> Attempt:
    m = row._mapping
    return Attempt(
        job_id=m["job_id"],
        attempt=m["attempt"],
        backend=m["backend"],
        prompt_id=m["prompt_id"],
        started_at=must_aware(m["started_at"]),
        finished_at=aware(m["finished_at"]),
        outcome=m["outcome"],
    )


def version_from_row(row: Any) -> WorkflowVersion:
    m = row._mapping
    return WorkflowVersion(
        version=m["version"],
        name=m["name"],
        graph=m["graph"],
        contract=m["contract"],
        created_at=must_aware(m["created_at"]),
    )


def idempotency_from_row(row: Any) -> IdempotencyRecord:
    m = row._mapping
    return IdempotencyRecord(
        owner_id=m["owner_id"],
        key=m["key"],
        fingerprint=m["fingerprint"],
        status_code=m["status_code"],
        body=m["body"],
        job_id=m["job_id"],
        created_at=must_aware(m["created_at"]),
    )


def delivery_from_row(row: Any, log: tuple[DeliveryAttempt, ...] = ()) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        job_id=m["job_id"],
        owner_id=m["owner_id"],
        url=m["url"],
        type=m["type"],
        data=m["data"],
        event_at=must_aware(m["event_at"]),
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        next_attempt_at=aware(m["next_attempt_at"]),
        give_up_at=aware(m["give_up_at"]),
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        created_at=must_aware(m["created_at"]),
        delivered_at=aware(m["delivered_at"]),
        log=log,
    )


def delivery_attempt_from_row(row: Any) -> DeliveryAttempt:
    m = row._mapping
    return DeliveryAttempt(
        attempt=m["attempt"],
        at=must_aware(m["at"]),
        status_code=m["status_code"],
        error=m["error"],
        duration_ms=m["duration_ms"],
    )
