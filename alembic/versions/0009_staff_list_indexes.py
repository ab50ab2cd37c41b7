"""indexes for the staff side at scale: the lists' order, a lead page's look-ups

Revision ID: 0009
Revises: 0008

The staff lists read newest first on ``(created_at, id)`` within ``spam`` (the list, the
spam folder, the CSV download) or within ``status`` (the Waiting view, a status filter), so
each page reads its own rows however many leads there are; the first of these carries the
columns a search matches. A lead page asks which leads are
possible duplicates of it and which were merged into it: ``duplicate_of`` and
``merged_into`` are indexed for that (and for the ON DELETE SET NULL of either when a lead
is purged or erased). Building them reads the whole leads table once: on a large database
the upgrade takes a few seconds per 100,000 leads, during which writes wait.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    # With the columns a search reads, so SQLite's substring search scans this index rather
    # than every whole row (consent wording, message, attribution).
    "ix_leads_listed": ["spam", "created_at", "id", "merged_into", "name", "email_key", "phone"],
    "ix_leads_status_listed": ["status", "created_at", "id"],
    "ix_leads_duplicate_of": ["duplicate_of"],
    "ix_leads_merged_into": ["merged_into"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "leads", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="leads")
