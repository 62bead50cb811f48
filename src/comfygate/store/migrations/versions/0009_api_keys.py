"""api_keys (worker tokens become keys with the worker scope) and share_links

Revision ID: 0009
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("pool", sa.String(length=100), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    # Same hash function: every worker token keeps working, now as a worker key.
    op.execute(
        "INSERT INTO api_keys (id, name, scopes, pool, secret_hash, created_at, revoked_at) "
        "SELECT id, name, 'worker', pool, secret_hash, created_at, revoked_at FROM worker_tokens"
    )
    op.drop_table("worker_tokens")
    op.create_table(
        "share_links",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_share_links_job_id", "share_links", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_share_links_job_id", table_name="share_links")
    op.drop_table("share_links")
    op.create_table(
        "worker_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("pool", sa.String(length=100), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    op.execute(
        "INSERT INTO worker_tokens (id, name, pool, secret_hash, created_at, revoked_at) "
        "SELECT id, name, pool, secret_hash, created_at, revoked_at FROM api_keys "
        "WHERE scopes = 'worker'"
    )
    op.drop_table("api_keys")
