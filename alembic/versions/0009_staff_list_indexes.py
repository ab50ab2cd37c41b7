"""indexes for the staff side at scale: the lists' order, a lead page's look-ups

Revision ID: 0009
Revises: 0008

The staff lists read newest first on ``(created_at, id)``; ``ix_leads_listed`` has that
order and then every column the lists' filters and a search test (spam, merged_into, status,
form, name, email_key, phone), so a page, a filtered page or a search walks the index and
reads a row only for a lead that matches, and a page deep in the list (or the CSV download's
last) seeks straight to its place. No index starts with spam or status: without statistics
SQLite would take one for the intake's look-up of a returning visitor, over its email and
phone indexes. A lead page asks which leads are possible duplicates of it and which were
merged into it: ``duplicate_of`` and ``merged_into`` are indexed for that (and for the ON
DELETE SET NULL of either when a lead is purged or erased), where they are set only: an
index holding the NULLs would be SQLite's pick for the lists' ``merged_into IS NULL``.
Building them reads the whole leads table once: a few seconds per 100,000 leads, during
which writes wait.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTED = (
    "created_at", "id", "spam", "merged_into", "status", "form", "name", "email_key", "phone",
)  # fmt: skip
ONLY_SET = ("duplicate_of", "merged_into")  # partial: where the column is set


def upgrade() -> None:
    op.create_index("ix_leads_listed", "leads", list(LISTED))
    for column in ONLY_SET:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_leads_{column}", "leads", [column], sqlite_where=where, postgresql_where=where
        )


def downgrade() -> None:
    for column in reversed(ONLY_SET):
        op.drop_index(f"ix_leads_{column}", table_name="leads")
    op.drop_index("ix_leads_listed", table_name="leads")
