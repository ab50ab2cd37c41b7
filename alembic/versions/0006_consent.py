"""consent wordings on file by form and version; a lead's consent can be withdrawn

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leads.storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The wordings already stored with leads and enquiries, each from when it was first used.
BACKFILL = """
INSERT INTO consent_versions (form, version, text, first_shown_at)
SELECT form, consent_version, MIN(consent_text), MIN(created_at)
FROM (
    SELECT form, consent_version, consent_text, created_at FROM leads
    UNION ALL
    SELECT form, consent_version, consent_text, created_at FROM enquiries
) AS shown
GROUP BY form, consent_version
"""


def upgrade() -> None:
    op.create_table(
        "consent_versions",
        sa.Column("form", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("first_shown_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("form", "version"),
    )
    op.execute(BACKFILL)
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "consent_withdrawn_at",
                leads.storage.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "consent_withdrawn_by",
                sqlmodel.sql.sqltypes.AutoString(length=120),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("consent_withdrawn_by")
        batch_op.drop_column("consent_withdrawn_at")
    op.drop_table("consent_versions")
