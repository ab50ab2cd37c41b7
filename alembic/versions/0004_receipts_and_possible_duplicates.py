"""receipts per submission, possible duplicates, scoped idempotency keys (without the
status code nothing read)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of", sa.Uuid(), nullable=True))
    # A lead stored before receipts existed was answered with its own id: that stays its
    # first submission's receipt, so what those visitors were told still means something.
    op.execute("UPDATE leads SET receipt_id = id")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.alter_column("receipt_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index("ix_leads_receipt_id", ["receipt_id"], unique=True)
        batch_op.create_foreign_key(
            "fk_leads_duplicate_of_leads", "leads", ["duplicate_of"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.drop_column("status_code")  # always 201; never read


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_code", sa.Integer(), nullable=False, server_default="201")
        )
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("receipt_id")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint("fk_leads_duplicate_of_leads", type_="foreignkey")
        batch_op.drop_index("ix_leads_receipt_id")
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("receipt_id")
