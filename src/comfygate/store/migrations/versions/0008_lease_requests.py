"""lease_requests: answered lease calls by request id, shared by every gateway;
jobs.models: the model files a job's graph names

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "lease_requests",
        sa.Column("agent_id", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "request_id"),
    )
    op.create_index("lease_requests_created", "lease_requests", ["created_at"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("models", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("models")
    op.drop_index("lease_requests_created", table_name="lease_requests")
    op.drop_table("lease_requests")
