"""the outbox claim reads due messages in index order: ``ix_outbox_due`` gains the claim's order

Revision ID: 0010
Revises: 0009

A dispatcher claims the first few pending messages that are due, in the order they came due
(``next_attempt_at``, then creation, then id). ``ix_outbox_due`` was ``(status,
next_attempt_at)``: enough to find the due messages, not to read them in that order, so every
claim read and sorted all of them to take a handful, and a backlog of 20,000 made each claim
cost ~20 ms of SQLite. With ``created_at`` and ``id`` after ``next_attempt_at`` the claim
seeks to the first pending row and stops after its limit, on SQLite and PostgreSQL alike; the
earliest ``next_attempt_at`` (when to wake next) is read from the same index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])
