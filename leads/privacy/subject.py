"""The subject export: everything held about one person, as one JSON document, for a
subject access request (``leads export-subject``).

It holds their leads (every column), all their enquiries (those under their leads and those
they sent under somebody else's), each consent record (the exact wording, its version, when
and on which page), their leads' timelines (notes included) and the notifications about
them (kind, channel, status, attempts, dates: never a webhook URL or a delivery error,
which may hold the clinic's secrets). Exporting is recorded in the audit log as
``subject_exported``, with how it was asked and how much was found, never the person."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from leads.core.vocabulary import AuditAction
from leads.privacy.matching import Subject, subject_enquiries, subject_leads
from leads.staff.audit import record_audit
from leads.storage.models import Enquiry, Lead, OutboxMessage
from leads.storage.staff_tables import LeadEvent

NOTIFICATION_FIELDS = (
    "id", "lead_id", "enquiry_id", "kind", "channel", "status", "attempts", "created_at",
    "next_attempt_at", "delivered_at",
)  # fmt: skip
EVENT_FIELDS = ("id", "lead_id", "at", "kind", "actor", "detail", "text")


def _row(record: SQLModel, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    return data if fields is None else {name: data[name] for name in fields}


def _consent(kind: str, record: Lead | Enquiry, at: datetime) -> dict[str, Any]:
    return {
        "of": kind,
        "id": str(record.id),
        "wording": record.consent_text,
        "version": record.consent_version,
        "at": at.isoformat(),
        "page": record.page_url,
    }


async def subject_document(
    *, session: AsyncSession, subject: Subject, actor: str, now: datetime
) -> dict[str, Any]:
    """Everything about ``subject``, read and recorded in the caller's transaction."""
    leads = await subject_leads(session=session, subject=subject)
    lead_ids = [lead.id for lead in leads]
    enquiries = await subject_enquiries(session=session, subject=subject, lead_ids=lead_ids)
    enquiry_ids: list[uuid.UUID] = [e.id for e in enquiries]
    events = (
        await session.scalars(
            select(LeadEvent)
            .where(col(LeadEvent.lead_id).in_(lead_ids))
            .order_by(col(LeadEvent.at), col(LeadEvent.id))
        )
    ).all()
    messages = (
        await session.scalars(
            select(OutboxMessage)
            .where(
                or_(
                    col(OutboxMessage.lead_id).in_(lead_ids),
                    col(OutboxMessage.enquiry_id).in_(enquiry_ids),
                )
            )
            .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
        )
    ).all()
    document = {
        "subject": {subject.by: subject.key},
        "exported_at": now.isoformat(),
        "leads": [_row(lead) for lead in leads],
        "enquiries": [_row(enquiry) for enquiry in enquiries],
        "consents": [
            *(_consent("lead", lead, lead.consent_at) for lead in leads),
            *(_consent("enquiry", e, e.created_at) for e in enquiries),
        ],
        "timeline": [_row(event, EVENT_FIELDS) for event in events],
        "notifications": [_row(message, NOTIFICATION_FIELDS) for message in messages],
    }
    await record_audit(
        session=session,
        actor=actor,
        action=AuditAction.SUBJECT_EXPORTED,
        now=now,
        detail={
            "by": subject.by,
            "leads": len(leads),
            "enquiries": len(enquiries),
            "timeline_entries": len(events),
            "notifications": len(messages),
        },
    )
    return document
