"""daily jobs: one row per job per day, so that every server agrees on who does it

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leads.storage.types


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_jobs",
        sa.Column("job", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job", "day"),
    )


def downgrade() -> None:
    op.drop_table("daily_jobs")
