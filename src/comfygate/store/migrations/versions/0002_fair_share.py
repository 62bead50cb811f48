"""fair share: jobs.fair_key, pool_clocks, the claim index ordered by it

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_table(
        "pool_clocks",
        sa.Column("pool", sa.String(length=100), nullable=False),
        sa.Column("fair_key", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pool"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fair_key", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
    op.drop_index("jobs_claim", table_name="jobs")
    # The claim reads this index in order: a pool's queued jobs by priority, then
    # fair_key (owners interleaved), then age.
    op.create_index(
        "jobs_claim",
        "jobs",
        ["pool", sa.text("priority DESC"), "fair_key", "id"],
        sqlite_where=QUEUED,
        postgresql_where=QUEUED,
    )
    op.create_index(
        "jobs_owner_fair",
        "jobs",
        ["pool", "owner_id", "fair_key"],
        sqlite_where=QUEUED,
        postgresql_where=QUEUED,
    )


def downgrade() -> None:
    op.drop_index("jobs_owner_fair", table_name="jobs")
    op.drop_index("jobs_claim", table_name="jobs")
    op.create_index(
        "jobs_claim",
        "jobs",
        ["pool", sa.text("priority DESC"), "id"],
        sqlite_where=QUEUED,
        postgresql_where=QUEUED,
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("fair_key")
    op.drop_table("pool_clocks")
