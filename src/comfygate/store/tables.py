"""The schema. Migrations in ``migrations/`` must produce exactly this."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)

metadata = MetaData()

TS = DateTime(timezone=True)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("graph", JSON, nullable=False),
    Column("contract", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner_id", String(200), nullable=False),
    Column("workflow", String(100), nullable=False),
    Column("workflow_version", String(64), ForeignKey("workflow_versions.version"), nullable=False),
    Column("pool", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    #: start-time fair queuing: owners interleave within a priority (see sql.py)
    Column("fair_key", BigInteger, nullable=False, server_default=text("0")),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("retry_on_timeout", Boolean, nullable=False, server_default=text("false")),
    Column("params", JSON, nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("progress", JSON, nullable=True),
    Column("error", JSON, nullable=True),
    Column("outputs", JSON, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("retry_of", String(36), nullable=True),
    Column("not_before", TS, nullable=True),
    #: a retried job prefers another backend than the one it failed on (for a while)
    Column("avoid_backend", String(500), nullable=True),
    Column("expires_at", TS, nullable=True),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_token", String(64), nullable=True),
    Column("lease_expires_at", TS, nullable=True),
    Column("heartbeat_at", TS, nullable=True),
    Column("cancel_requested_at", TS, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("started_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("outputs_expired_at", TS, nullable=True),
    Column("deleted_at", TS, nullable=True),
    #: where the job's events are sent: {"url", "events"} (jobs/webhooks.py)
    Column("webhook", JSON, nullable=True),
    #: the model files the graph names (None: none); a claim needs a backend with all
    Column("models", JSON, nullable=True),
    Index(
        "jobs_claim",
        "pool",
        text("priority DESC"),
        "fair_key",
        "id",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index(
        "jobs_owner_fair",
        "pool",
        "owner_id",
        "fair_key",
        sqlite_where=text("status = 'queued'"),
        postgresql_where=text("status = 'queued'"),
    ),
    Index(
        "jobs_leases",
        "lease_expires_at",
        sqlite_where=text("status IN ('running', 'canceling')"),
        postgresql_where=text("status IN ('running', 'canceling')"),
    ),
    Index("jobs_owner", "owner_id", "id"),
    Index("jobs_owner_changes", "owner_id", "updated_at"),
    #: throughput over the last hour (store/stats.py)
    Index("jobs_finished", "finished_at"),
)

#: per pool, the fair_key of the latest claimed job: the queue's virtual time
pool_clocks = Table(
    "pool_clocks",
    metadata,
    Column("pool", String(100), primary_key=True),
    Column("fair_key", BigInteger, nullable=False),
)

job_attempts = Table(
    "job_attempts",
    metadata,
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("backend", String(500), nullable=False),
    Column("prompt_id", String(36), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("finished_at", TS, nullable=True),
    Column("outcome", String(64), nullable=True),
    PrimaryKeyConstraint("job_id", "attempt"),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(36), ForeignKey("jobs.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("at", TS, nullable=False),
    UniqueConstraint("job_id", "seq", name="job_events_job_seq"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", String(200), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("body", JSON, nullable=True),
    Column("job_id", String(36), nullable=True),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("owner_id", "key"),
)

#: API keys (programs, remote workers, scripts): only the SHA-256 of each secret is kept
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    #: space-separated, sorted
    Column("scopes", String(200), nullable=False),
    #: a worker key's only pool, or NULL for any
    Column("pool", String(100), nullable=True),
    #: where the key's submits without a ``webhook`` send their terminal events
    Column("webhook_url", String(2048), nullable=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS, nullable=True),
    Column("last_used_at", TS, nullable=True),
)

#: share links: a signed token names a row, so its owner can revoke it
share_links = Table(
    "share_links",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False, index=True),
    Column("owner_id", String(200), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=True),
    Column("revoked_at", TS, nullable=True),
)

#: the webhook outbox: a row per event, written in the transaction of the job's
#: transition, so a crash after the commit cannot lose it (store/webhooks.py)
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("owner_id", String(200), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("type", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Column("event_at", TS, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TS, nullable=True),
    #: NULL until its first attempt: a day from then (redelivery clears it again)
    Column("give_up_at", TS, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("delivered_at", TS, nullable=True),
    Index(
        "webhook_deliveries_due",
        "next_attempt_at",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    Index("webhook_deliveries_job", "job_id"),
)

#: every attempt of every delivery: the receiver's status code or the error, and how long
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", TS, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Index("webhook_attempts_delivery", "delivery_id", "attempt"),
)

#: endpoints an owner's receiver shut with 410 Gone: later deliveries to them are not tried
webhook_disabled = Table(
    "webhook_disabled",
    metadata,
    Column("owner_id", String(200), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("disabled_at", TS, nullable=False),
    PrimaryKeyConstraint("owner_id", "url"),
)

#: lease calls answered, by the agent's request id: a lease call retried against any
#: gateway gets the lease the first call took (purged after a few minutes)
lease_requests = Table(
    "lease_requests",
    metadata,
    Column("agent_id", String(200), nullable=False),
    Column("request_id", String(100), nullable=False),
    Column("job_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("lease_token", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("agent_id", "request_id"),
    Index("lease_requests_created", "created_at"),
)

#: a budget per principal: what its jobs may cost per calendar day or month (UTC)
budgets = Table(
    "budgets",
    metadata,
    Column("principal_id", String(200), primary_key=True),
    Column("amount", Float, nullable=False),
    Column("period", String(16), nullable=False),
    Column("updated_at", TS, nullable=False),
)

#: what each job was charged when it was queued; refunds are derived from the job
#: (jobs/quota.py). No foreign key: a charge outlives the job rows retention removes.
job_charges = Table(
    "job_charges",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("owner_id", String(200), nullable=False),
    Column("cost", Float, nullable=False),
    Column("charged_at", TS, nullable=False),
    Index("job_charges_owner", "owner_id", "charged_at"),
)
