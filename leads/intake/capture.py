"""The use case behind every submission: store it, durably, exactly once.

In one transaction:
1. an ``Idempotency-Key`` seen in the last 24 hours answers with its first lead again;
2. a visitor whose email or phone matches a lead still ``new`` and active in the last
   24 hours gets an enquiry added to that lead instead of a second lead;
3. otherwise a new lead is stored (flagged as spam, with its reason, when it is);
4. its notifications are written to the outbox (held back if it is spam).
The caller answers 201 only after this returns, that is, after the commit: a lead that got
201 is on disk, and so are the messages that will announce it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from leads.intake.submission import Submission
from leads.notify.outbox import messages_for
from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.leads import find_open_lead, get_idempotency_record, lock_contacts
from leads.storage.models import Enquiry, IdempotencyRecord, Lead
from leads.storage.outbox import wake_dispatchers
from leads.storage.types import utcnow

REPLAY_WINDOW = timedelta(hours=24)
RETURNING_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What the request says about the visitor, beyond the fields they typed."""

    client_ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class Receipt:
    lead_id: uuid.UUID
    outcome: str  # "created" | "merged" | "replayed"
    spam: bool
    notify: bool = False  # notifications are waiting: wake the dispatcher


async def capture_lead(
    database: Database,
    submission: Submission,
    meta: RequestMeta,
    *,
    settings: Settings,
    idempotency_key: str | None = None,
) -> Receipt:
    try:
        return await _capture(database, submission, meta, settings, idempotency_key)
    except IntegrityError:
        # Another request with the same Idempotency-Key committed first: answer as it did.
        if idempotency_key is None:
            raise
        async with database.reading() as session:
            record = await get_idempotency_record(session=session, key=idempotency_key)
        if record is None:
            raise
        return Receipt(record.lead_id, "replayed", spam=False)


async def _capture(
    database: Database,
    submission: Submission,
    meta: RequestMeta,
    settings: Settings,
    key: str | None,
) -> Receipt:
    now = utcnow()
    async with database.writing() as session:
        if key is not None:
            record = await get_idempotency_record(session=session, key=key)
            if record is not None and record.created_at > now - REPLAY_WINDOW:
                return Receipt(record.lead_id, "replayed", spam=False)
            if record is not None:
                await session.delete(record)
                await session.flush()

        email_key = submission.email.lower() if submission.email else None
        lead = None
        if not submission.is_spam:
            await lock_contacts(
                session=session, keys=[k for k in (email_key, submission.phone) if k]
            )
            lead = await find_open_lead(
                session=session,
                email_key=email_key,
                phone=submission.phone,
                since=now - RETURNING_WINDOW,
            )
        enquiry = None
        if lead is not None:
            _add_enquiry(lead, submission, now)
            enquiry = Enquiry(lead_id=lead.id, created_at=now, **_enquiry_fields(submission, meta))
            session.add(enquiry)
            outcome = "merged"
        else:
            lead = _new_lead(submission, meta, now, email_key)
            session.add(lead)
            outcome = "created"
        messages = messages_for(
            settings,
            lead_id=lead.id,
            enquiry_id=enquiry.id if enquiry else None,
            visitor_email=lead.email,
            spam=submission.is_spam,
            now=now,
        )
        session.add_all(messages)
        notify = not submission.is_spam
        if notify:
            await wake_dispatchers(session=session)
        if key is not None:
            session.add(
                IdempotencyRecord(key=key, created_at=now, lead_id=lead.id, status_code=201)
            )
        await session.flush()
        return Receipt(lead.id, outcome, spam=submission.is_spam, notify=notify)


def _enquiry_fields(submission: Submission, meta: RequestMeta) -> dict[str, Any]:
    return {
        "form": submission.form.slug,
        "message": submission.message,
        "interest": submission.interest,
        "preferred_contact": submission.preferred_contact,
        "consent_version": submission.form.consent_version,
        "consent_text": submission.form.consent,
        "client_ip": meta.client_ip,
        "user_agent": meta.user_agent,
        **submission.attribution,
    }


def _new_lead(
    submission: Submission, meta: RequestMeta, now: datetime, email_key: str | None
) -> Lead:
    return Lead(
        created_at=now,
        updated_at=now,
        last_enquiry_at=now,
        consent_at=now,
        name=submission.name,
        email=submission.email,
        email_key=email_key,
        phone=submission.phone,
        spam=submission.is_spam,
        spam_reason=submission.spam_reason,
        **_enquiry_fields(submission, meta),
    )


def _add_enquiry(lead: Lead, submission: Submission, now: datetime) -> None:
    """Fold a returning visitor's details into their open lead: fill in what it lacked."""
    lead.last_enquiry_at = now
    lead.updated_at = now
    lead.enquiry_count += 1
    if lead.email is None and submission.email is not None:
        lead.email = submission.email
        lead.email_key = submission.email.lower()
    if lead.phone is None and submission.phone is not None:
        lead.phone = submission.phone
    if submission.preferred_contact is not None:
        lead.preferred_contact = submission.preferred_contact
