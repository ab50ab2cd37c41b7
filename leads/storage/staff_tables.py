"""Tables of the staff side: who may sign in, their sessions and API tokens, what was done
to each lead (its timeline), what was done at all (the audit log), and which digests went.

Secrets are never stored: a session cookie and an API token are kept as SHA-256 digests of
random values (they are long random strings, so a fast hash is enough); passwords as argon2id
hashes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from leads.core.vocabulary import Role, TokenScope
from leads.storage.types import UTCDateTime, utcnow


def _at(*, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index)
    )


def _maybe_at() -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class User(SQLModel, table=True):
    """A member of staff. Disabled users keep their row: the timeline and the audit log
    still say who did what."""

    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True)  # lowercased
    password_hash: str = Field(max_length=200)
    role: str = Field(default=Role.STAFF.value, max_length=10)  # a Role
    active: bool = Field(default=True)
    created_at: datetime = _at()
    # Sessions started before this moment are over: changing a password or disabling the
    # account ends every session at once.
    sessions_valid_from: datetime = _at()


class StaffSession(SQLModel, table=True):
    __tablename__ = "staff_sessions"

    id: str = Field(primary_key=True, max_length=64)  # SHA-256 of the cookie's value
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _at()
    last_seen_at: datetime = _at()
    expires_at: datetime = _at()  # the absolute limit
    address: str | None = Field(default=None, max_length=45)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    scope: str = Field(default=TokenScope.READ.value, max_length=10)  # a TokenScope
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _at()
    last_used_at: datetime | None = _maybe_at()


class LeadEvent(SQLModel, table=True):
    """One entry of a lead's timeline: a status or assignment change, a note, a release,
    a resend, a merge. Enquiries and notification deliveries have their own tables and are
    woven into the timeline when it is read."""

    __tablename__ = "lead_events"
    __table_args__ = (Index("ix_lead_events_lead_at", "lead_id", "at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    lead_id: uuid.UUID = Field(foreign_key="leads.id", ondelete="CASCADE")
    at: datetime = _at()
    kind: str = Field(max_length=20)  # an EventKind
    # Who: a user, or an API token, or nobody (the service itself).
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    actor: str = Field(max_length=120)  # "user:<email>", "token:<name>" or "system"
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # a note


class AuditEntry(SQLModel, table=True):
    """Append-only: nothing updates or deletes an entry, except erasing a person's data,
    which clears ``lead_id`` and keeps the entry. Holds ids, never names or messages."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_lead", "lead_id"),
        Index("ix_audit_log_actor", "actor"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _at()
    actor: str = Field(max_length=120)  # "user:<email>", "token:<name>", "cli" or "anonymous"
    action: str = Field(max_length=40)  # an AuditAction
    lead_id: uuid.UUID | None = Field(default=None)
    address: str | None = Field(default=None, max_length=45)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Digest(SQLModel, table=True):
    """One row per day a digest was queued: the primary key is how several servers agree
    that exactly one of them sends it."""

    __tablename__ = "digests"

    day: date = Field(primary_key=True)
    created_at: datetime = _at()
    lead_count: int = Field(default=0)
