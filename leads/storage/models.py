"""Tables. A lead is a person who asked to hear from the clinic; an enquiry is a later
submission by the same person while their lead is still open."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from leads.core.vocabulary import LeadStatus, OutboxStatus
from leads.storage.types import UTCDateTime, utcnow


def _at(*, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=index)
    )


class Attribution(SQLModel):
    """Where the visitor came from, and what they were shown."""

    page_url: str | None = Field(default=None, max_length=500)
    referrer: str | None = Field(default=None, max_length=500)
    utm_source: str | None = Field(default=None, max_length=500)
    utm_medium: str | None = Field(default=None, max_length=500)
    utm_campaign: str | None = Field(default=None, max_length=500)
    utm_term: str | None = Field(default=None, max_length=500)
    utm_content: str | None = Field(default=None, max_length=500)
    client_ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=500)


# The staff lists' order, newest first, then every column their filters and a search test:
# SQLite and PostgreSQL walk this index and read a row only for a lead that matches. No
# index starts with spam or status: without statistics SQLite would take one of those for
# the intake's look-up of a returning visitor, over its email and phone indexes.
LISTED = (
    "created_at", "id", "spam", "merged_into", "status", "form", "name", "email_key", "phone",
)  # fmt: skip


def _only_set(column: str) -> Index:
    """An index of the leads where ``column`` is set: it serves ``column = ?``, and (holding
    no NULL) SQLite cannot take it for the lists' ``merged_into IS NULL``. The migration
    makes it partial on PostgreSQL too; a ``postgresql_where`` here would load PostgreSQL's
    dialect in every process, to check the option's name."""
    return Index(f"ix_leads_{column}", column, sqlite_where=text(f"{column} IS NOT NULL"))


class Lead(Attribution, table=True):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_created_at", "created_at"),
        Index("ix_leads_open_email", "email_key", "status"),
        Index("ix_leads_open_phone", "phone", "status"),
        Index("ix_leads_receipt_id", "receipt_id", unique=True),
        # The staff lists (LISTED); a lead page's possible duplicates and merged leads
        # (alembic/versions/0009).
        Index("ix_leads_listed", *LISTED),
        *(_only_set(name) for name in ("duplicate_of", "merged_into")),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # The receipt of the lead's first submission: what that visitor was told (201 {"id"}).
    # Visitors see receipts, never the lead's id; later submissions' receipts are enquiry ids.
    receipt_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    created_at: datetime = _at()
    updated_at: datetime = _at()
    last_enquiry_at: datetime = _at()
    form: str = Field(max_length=50)
    status: str = Field(default=LeadStatus.NEW.value, max_length=20)  # a LeadStatus
    name: str = Field(max_length=100)
    email: str | None = Field(default=None, max_length=320)
    # The address lowercased whole: how a returning visitor is recognised, through an index.
    email_key: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    preferred_contact: str | None = Field(default=None, max_length=10)
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    interest: str | None = Field(default=None, max_length=200)
    enquiry_count: int = Field(default=1)
    # The consent record: the exact wording shown, its version, and when/where it was given.
    consent_version: str = Field(max_length=64)
    consent_text: str = Field(sa_column=Column(Text, nullable=False))
    consent_at: datetime = _at()
    # Withdrawn through the staff side: when, and by whom (an actor label, as the
    # timeline names them). Nothing more is sent to the person, and no digest names them.
    consent_withdrawn_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    consent_withdrawn_by: str | None = Field(default=None, max_length=120)
    spam: bool = Field(default=False)
    spam_reason: str | None = Field(default=None, max_length=200)
    # An open lead this one shares an email or phone with, while the other details differ:
    # maybe the same person, maybe someone else using their address. Staff decide.
    duplicate_of: uuid.UUID | None = Field(
        default=None, foreign_key="leads.id", ondelete="SET NULL"
    )
    # The follow-up: who is on it, when it was first answered (its first status change
    # away from new: where the speed-to-lead clock stops), and a version for ETags.
    assigned_to: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", index=True, ondelete="SET NULL"
    )
    first_response_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    version: int = Field(default=1)
    # Merged into another lead by staff: it leaves the lists; unmerging clears this.
    merged_into: uuid.UUID | None = Field(default=None, foreign_key="leads.id", ondelete="SET NULL")
    # The language the visitor was shown the form in (a Language; None: stored before
    # leads kept it). The autoreply is written in it; interest and consent are as shown.
    language: str | None = Field(default=None, max_length=8)


class Enquiry(Attribution, table=True):
    """A returning visitor's later submission, kept under their open lead."""

    __tablename__ = "enquiries"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    lead_id: uuid.UUID = Field(foreign_key="leads.id", index=True, ondelete="CASCADE")
    created_at: datetime = _at()
    # Who sent it, as they wrote it: matched by email OR phone, the sender may be another
    # member of the household, whose details must not be lost in the merge.
    name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=20)
    form: str = Field(max_length=50)
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    interest: str | None = Field(default=None, max_length=200)
    preferred_contact: str | None = Field(default=None, max_length=10)
    consent_version: str = Field(max_length=64)
    consent_text: str = Field(sa_column=Column(Text, nullable=False))
    language: str | None = Field(default=None, max_length=8)  # as the lead's


class IdempotencyRecord(SQLModel, table=True):
    """The first answer given to an ``Idempotency-Key``, replayed for 24 hours.

    ``key`` is a digest of the client's key and its scope (the client's address and the
    page's origin), so one client's key never answers another's request; ``fingerprint``
    is a digest of what was submitted, so a key reused for another submission is refused."""

    __tablename__ = "idempotency_keys"

    key: str = Field(primary_key=True, max_length=255)
    created_at: datetime = _at(index=True)
    lead_id: uuid.UUID
    receipt_id: uuid.UUID | None = Field(default=None)
    fingerprint: str | None = Field(default=None, max_length=64)


class OutboxMessage(SQLModel, table=True):
    """One notification to deliver through one channel, written in the same transaction as
    the lead it announces. Its id is the email Message-ID and the ``webhook-id``, so a
    repeat after a crash is recognisably the same message."""

    __tablename__ = "outbox"
    # Each route's messages in the claim's order (leads/storage/outbox.py claim_due): a
    # claim seeks into every route with room, never sorts, and never reads past a full
    # route's backlog (leads/storage/outbox_routes.py).
    __table_args__ = (
        Index(
            "ix_outbox_route", "status", "channel", "target", "next_attempt_at", "created_at", "id"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # None for a message about no single lead (the daily digest).
    lead_id: uuid.UUID | None = Field(
        default=None, foreign_key="leads.id", index=True, ondelete="CASCADE"
    )
    enquiry_id: uuid.UUID | None = Field(default=None)
    kind: str = Field(max_length=30)  # a MessageKind
    channel: str = Field(max_length=20)  # a Channel
    target: str | None = Field(default=None, max_length=500)  # the webhook URL
    status: str = Field(default=OutboxStatus.PENDING.value, max_length=10)  # an OutboxStatus
    attempts: int = Field(default=0)
    created_at: datetime = _at()
    # Start of the give-up horizon: creation, or the operator's last retry.
    scheduled_from: datetime = _at()
    next_attempt_at: datetime = _at()
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_until: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    delivered_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    last_error: str | None = Field(default=None, max_length=500)
    # A provider with no idempotency key (texts): when the request was about to leave
    # (committed first), and the provider's id for the message once it accepted it.
    handed_over_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
    provider_message_id: str | None = Field(default=None, max_length=100)


class DisabledWebhook(SQLModel, table=True):
    """A webhook URL that answered 410 Gone: nothing more is sent to it until an operator
    retries one of its messages."""

    __tablename__ = "disabled_webhooks"

    url: str = Field(primary_key=True, max_length=500)
    disabled_at: datetime = _at()
    reason: str = Field(max_length=200)


# The staff side's tables, the consent wordings and the daily jobs live in their own
# modules; importing them here registers them with the metadata that migrations and tests
# compare against.
from leads.storage.consent_tables import ConsentVersion  # noqa: E402
from leads.storage.job_days import JobDay  # noqa: E402
from leads.storage.staff_tables import (  # noqa: E402
    ApiToken,
    AuditEntry,
    Digest,
    LeadEvent,
    StaffSession,
    User,
)

__all__ = [
    "ApiToken",
    "Attribution",
    "AuditEntry",
    "ConsentVersion",
    "Digest",
    "DisabledWebhook",
    "Enquiry",
    "IdempotencyRecord",
    "JobDay",
    "Lead",
    "LeadEvent",
    "OutboxMessage",
    "StaffSession",
    "User",
]

# Delivery incidents (notifications not getting through): the alerts' table.
from leads.storage.alert_tables import DeliveryIncident  # noqa: E402, F401
