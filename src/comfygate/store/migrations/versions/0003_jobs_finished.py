"""jobs_finished: an index for throughput over the last hour

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_index("jobs_finished", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("jobs_finished", table_name="jobs")
