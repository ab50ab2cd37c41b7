"""delivery incidents: the open one keeps the alert to one per stall

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leads.storage.types


revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_incidents",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("opened_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("since", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dead", sa.Integer(), nullable=False),
        sa.Column("waiting", sa.Integer(), nullable=False),
        sa.Column("channels", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("closed_at", leads.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("number"),
    )


def downgrade() -> None:
    op.drop_table("delivery_incidents")
