"""each route's pending messages in the claim's order: ``ix_outbox_route``

Revision ID: 0013
Revises: 0012

A claim gives each route (channel and target) at most a few slots. Once a route's slots are
full it has to find the other routes' due messages, and ``ix_outbox_due`` (in the order
messages came due, every route mixed) can only read past the full route's whole backlog to
find them: with 50,000 emails waiting for the clinic inbox, every claim read all 50,000.
``(status, channel, target, next_attempt_at, created_at, id)`` keeps each route's pending
messages side by side in the claim's order, so a claim finds the routes that have any with
one seek per route and takes each route's first few with one more. It replaces
``ix_outbox_due``: nothing reads the outbox in that order across routes any more (when to
wake is each route's earliest too), and every lead's outbox rows would pay for both.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["status", "channel", "target", "next_attempt_at", "created_at", "id"]


def upgrade() -> None:
    op.create_index("ix_outbox_route", "outbox", COLUMNS)
    op.drop_index("ix_outbox_due", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at", "created_at", "id"])
    op.drop_index("ix_outbox_route", table_name="outbox")
