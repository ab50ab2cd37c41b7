"""texts: when an outbox row was handed to its provider, and the provider's message id

Revision ID: 0011
Revises: 0010

SMS providers take no idempotency key, so a text whose request timed out may or may not
have been sent. ``handed_over_at`` is written (and committed) just before the request
leaves; ``provider_message_id`` once the provider has accepted the message. A retry of a
row handed over with no id looks the message up (Twilio) or is not sent again (Vonage), so
nobody gets the same text twice. Both are NULL for every other row: adding them rewrites
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leads.storage.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "handed_over_at", leads.storage.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "provider_message_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("provider_message_id")
        batch_op.drop_column("handed_over_at")
