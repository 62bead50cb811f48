"""budgets and job_charges: per-principal budgets and what each job was charged

Revision ID: 0010
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("principal_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal_id"),
    )
    op.create_table(
        "job_charges",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("owner_id", sa.String(length=200), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index("job_charges_owner", "job_charges", ["owner_id", "charged_at"])


def downgrade() -> None:
    op.drop_index("job_charges_owner", table_name="job_charges")
    op.drop_table("job_charges")
    op.drop_table("budgets")
