"""the language a visitor was shown the form in, on leads and enquiries

Revision ID: 0012
Revises: 0011

The autoreply is written when it is sent, from the stored lead: it needs the language the
visitor used. NULL for what was stored before (English then, or LEADS_LANGUAGE).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("leads", "enquiries"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
            )


def downgrade() -> None:
    for table in ("leads", "enquiries"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("language")
