"""leads, enquiries and idempotency keys

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leads.storage.types


revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "leads",
        sa.Column("page_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("referrer", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_medium", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_campaign", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_term", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_content", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("client_ip", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "last_enquiry_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("form", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("email_key", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("preferred_contact", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("interest", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("enquiry_count", sa.Integer(), nullable=False),
        sa.Column("consent_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("consent_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("spam", sa.Boolean(), nullable=False),
        sa.Column("spam_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index("ix_leads_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_leads_open_email", ["email_key", "status"], unique=False)
        batch_op.create_index("ix_leads_open_phone", ["phone", "status"], unique=False)

    op.create_table(
        "enquiries",
        sa.Column("page_url", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("referrer", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_medium", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_campaign", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_term", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("utm_content", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("client_ip", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("user_agent", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("form", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("interest", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("preferred_contact", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("consent_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("enquiries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enquiries_lead_id"), ["lead_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("enquiries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enquiries_lead_id"))

    op.drop_table("enquiries")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_open_phone")
        batch_op.drop_index("ix_leads_open_email")
        batch_op.drop_index("ix_leads_created_at")

    op.drop_table("leads")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))

    op.drop_table("idempotency_keys")
