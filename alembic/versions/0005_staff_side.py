"""staff accounts, sessions, API tokens, lead timelines, the audit log, digests; leads get
an assignee, a first response, a version and a merge; digests are outbox rows of no lead

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import leads.storage.types


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", leads.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_actor", ["actor"], unique=False)
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_log_lead", ["lead_id"], unique=False)

    op.create_table(
        "digests",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lead_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "sessions_valid_from", leads.storage.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("csrf_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "lead_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("at", leads.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.create_index("ix_lead_events_lead_at", ["lead_id", "at"], unique=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_to", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "first_response_at", leads.storage.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("merged_into", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_leads_assigned_to"), ["assigned_to"], unique=False)
        batch_op.create_foreign_key(
            "fk_leads_assigned_to_users", "users", ["assigned_to"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            "fk_leads_merged_into_leads", "leads", ["merged_into"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("lead_id", existing_type=sa.CHAR(length=32), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("lead_id", existing_type=sa.CHAR(length=32), nullable=False)

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_constraint("fk_leads_merged_into_leads", type_="foreignkey")
        batch_op.drop_constraint("fk_leads_assigned_to_users", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_leads_assigned_to"))
        batch_op.drop_column("merged_into")
        batch_op.drop_column("version")
        batch_op.drop_column("first_response_at")
        batch_op.drop_column("assigned_to")

    with op.batch_alter_table("lead_events", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_events_lead_at")

    op.drop_table("lead_events")
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_sessions_user_id"))

    op.drop_table("staff_sessions")
    op.drop_table("users")
    op.drop_table("digests")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_lead")
        batch_op.drop_index("ix_audit_log_at")
        batch_op.drop_index("ix_audit_log_actor")

    op.drop_table("audit_log")
    op.drop_table("api_tokens")
