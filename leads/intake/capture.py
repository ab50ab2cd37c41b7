"""The use case behind every submission: store it, durably, exactly once.

In one transaction:
1. an ``Idempotency-Key`` this client used in the last 24 hours answers with its first
   receipt again (or ``422 idempotency_key_reused`` if it came with another submission);
2. a visitor whose contact details agree with a lead still ``new`` and active in the last
   24 hours (the same email and no other phone, or the same phone and no other email) gets
   an enquiry added to that lead instead of a second lead; a submission that shares an
   email or phone with such a lead but disagrees on the other is a lead of its own, marked
   as a possible duplicate, so nobody can attach themselves to someone else's lead;
3. otherwise a new lead is stored (flagged as spam, with its reason, when it is);
4. its notifications are written to the outbox (none for spam: staff can release it);
5. the form's consent wording is put on file (``consent_versions``) if it is not yet (the
   writer remembers the wordings its commits put on file, and writes only new ones).
Every submission gets a receipt id of its own (the lead's ``receipt_id`` for the first, the
enquiry's id for later ones): visitors see receipts, staff see leads, so an answer never
tells whether someone else wrote in before.
The caller answers 201 only after this returns, that is, after the commit: a lead that got
201 is on disk, and so are the messages that will announce it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import REPLAY_WINDOW, RETURNING_WINDOW, LeadStatus
from leads.errors import LeadsError, StorageUnavailable
from leads.intake.receipts import IdempotencyKey, Receipt, answer
from leads.intake.submission import Submission
from leads.notify.outbox import message_rows_for
from leads.settings import Settings
from leads.storage.consent_tables import Wording, record_wordings
from leads.storage.database import Database
from leads.storage.leads import (
    find_open_leads,
    get_idempotency_record,
    get_idempotency_records,
    lock_contacts,
)
from leads.storage.models import Enquiry, IdempotencyRecord, Lead, OutboxMessage
from leads.storage.outbox import wake_dispatchers
from leads.storage.types import utcnow


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What the request says about the visitor, beyond the fields they typed."""

    client_ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class CaptureJob:
    """One validated submission waiting to be stored."""

    submission: Submission
    meta: RequestMeta
    idempotency_key: IdempotencyKey | None = None

    @property
    def email_key(self) -> str | None:
        return self.submission.email.lower() if self.submission.email else None

    def contact_keys(self) -> list[str]:
        if self.submission.is_spam:
            return []
        return [k for k in (self.email_key, self.submission.phone) if k]


async def capture_batch(
    database: Database,
    jobs: Sequence[CaptureJob],
    *,
    settings: Settings,
    on_file: set[Wording] | None = None,
) -> list[Receipt | LeadsError]:
    """Store many submissions in ONE transaction (group commit), each answer in order.

    ``on_file``: the consent wordings known to be in ``consent_versions`` already (they are
    never changed or deleted there), kept by the caller from batch to batch; a batch writes
    only the others, and adds its own once committed.

    If the shared transaction meets a uniqueness race (the same Idempotency-Key committed
    meanwhile by another process), each job is retried in a transaction of its own, so one
    cannot fail the others. If the database is unavailable, every job gets that error."""
    known = on_file if on_file is not None else set()
    wordings = {_wording(job) for job in jobs}
    try:
        async with database.writing() as session:
            receipts = await store_submissions(
                session, jobs, settings=settings, now=utcnow(), wordings=wordings - known
            )
        known |= wordings
        return list(receipts)
    except StorageUnavailable as exc:
        return [exc] * len(jobs)
    except IntegrityError:
        if len(jobs) == 1:
            return [await _replayed(database, jobs[0])]
    results: list[Receipt | LeadsError] = []
    for job in jobs:
        results.extend(await capture_batch(database, [job], settings=settings, on_file=known))
    return results


def _wording(job: CaptureJob) -> Wording:
    form = job.submission.form
    return (form.slug, form.consent_version, form.consent)


async def _replayed(database: Database, job: CaptureJob) -> Receipt | LeadsError:
    """Another request with the same Idempotency-Key committed first: answer as it did."""
    if job.idempotency_key is None:
        return StorageUnavailable("the database refused a write")
    async with database.reading() as session:
        record = await get_idempotency_record(session=session, key=job.idempotency_key.digest)
    if record is None:
        return StorageUnavailable("the database refused a write")
    return answer(record, job.idempotency_key)


async def store_submissions(
    session: AsyncSession,
    jobs: Sequence[CaptureJob],
    *,
    settings: Settings,
    now: datetime,
    wordings: Collection[Wording],
) -> list[Receipt | LeadsError]:
    """The use case for a batch, inside the caller's transaction. Set-based: one query
    finds every Idempotency-Key and one every open lead the batch could join; the jobs are
    then decided in order in memory (so a later job sees an earlier one of the same batch)
    and written as one INSERT per table (Core rows: no ORM object per new lead or message;
    only a returning visitor's open lead is an ORM object, updated by the flush).
    ``wordings``: the consent wordings to put on file (those not known to be there)."""
    # Contact locks for the whole batch, in one global order: no two batches can deadlock.
    await lock_contacts(session=session, keys=[k for job in jobs for k in job.contact_keys()])
    records = await get_idempotency_records(
        session=session, keys={j.idempotency_key.digest for j in jobs if j.idempotency_key}
    )
    batch = _Batch(session, settings, now, records)
    found = await find_open_leads(
        session=session,
        email_keys={k for j in jobs if (k := j.email_key) and not j.submission.is_spam},
        phones={p for j in jobs if (p := j.submission.phone) and not j.submission.is_spam},
        since=now - RETURNING_WINDOW,
    )
    for lead in found:
        batch.remember(lead)
    receipts = [await batch.store(job) for job in jobs]
    await batch.write()
    await record_wordings(session=session, wordings=wordings, now=now)
    if any(isinstance(r, Receipt) and r.notify for r in receipts):
        await wake_dispatchers(session=session)
    return receipts


class _NewLead:
    """A lead this batch creates: its row, and what matching a later job reads or changes."""

    __slots__ = ("enquiry_count", "last_enquiry_at", "row", "updated_at")

    def __init__(self, row: dict[str, Any]):
        self.row = row
        self.last_enquiry_at: datetime = row["last_enquiry_at"]
        self.updated_at: datetime = row["updated_at"]
        self.enquiry_count: int = row["enquiry_count"]

    @property
    def id(self) -> uuid.UUID:
        return cast("uuid.UUID", self.row["id"])

    @property
    def receipt_id(self) -> uuid.UUID:
        return cast("uuid.UUID", self.row["receipt_id"])

    @property
    def email(self) -> str | None:
        return cast("str | None", self.row["email"])

    @property
    def email_key(self) -> str | None:
        return cast("str | None", self.row["email_key"])

    @property
    def phone(self) -> str | None:
        return cast("str | None", self.row["phone"])

    def values(self) -> dict[str, Any]:
        return {
            **self.row,
            "last_enquiry_at": self.last_enquiry_at,
            "updated_at": self.updated_at,
            "enquiry_count": self.enquiry_count,
        }


AnyLead = Lead | _NewLead


class _Batch:
    """What one batch has decided so far: leads open for matching, keys answered, and the
    rows it will write."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        now: datetime,
        records: dict[str, IdempotencyRecord],
    ):
        self.session = session
        self.settings = settings
        self.now = now
        self.records = records
        self.open: dict[str, list[AnyLead]] = {}  # "e:<email_key>" / "p:<phone>" -> open leads
        self.new_leads: list[_NewLead] = []
        self.messages: list[dict[str, Any]] = []

    def remember(self, lead: AnyLead) -> None:
        for key in _keys(lead.email_key, lead.phone):
            leads = self.open.setdefault(key, [])
            if not any(known is lead for known in leads):  # by identity: == compares fields
                leads.append(lead)

    def match(self, job: CaptureJob) -> tuple[AnyLead | None, AnyLead | None]:
        """The open lead this submission joins, or else the newest open lead it shares an
        email or phone with but disagrees with (a possible duplicate)."""
        if job.submission.is_spam:
            return None, None
        email_key, phone = job.email_key, job.submission.phone
        candidates = {
            id(lead): lead for k in _keys(email_key, phone) for lead in self.open.get(k, ())
        }
        newest = sorted(candidates.values(), key=lambda lead: lead.last_enquiry_at, reverse=True)
        for lead in newest:
            if _agrees(lead, email_key=email_key, phone=phone):
                return lead, None
        return None, (newest[0] if newest else None)

    async def store(self, job: CaptureJob) -> Receipt | LeadsError:
        submission, meta, key, now = job.submission, job.meta, job.idempotency_key, self.now
        if key is not None and (record := self.records.get(key.digest)) is not None:
            if record.created_at > now - REPLAY_WINDOW:
                return answer(record, key)
            await self.session.delete(record)  # expired: the key starts afresh
            await self.session.flush()
        lead, similar = self.match(job)
        enquiry = None
        if lead is not None:
            _add_enquiry(lead, now)
            enquiry = Enquiry(
                lead_id=lead.id,
                created_at=now,
                name=submission.name,
                email=submission.email,
                phone=submission.phone,
                **_enquiry_fields(submission, meta),
            )
            self.session.add(enquiry)
            outcome = "merged"
        else:
            lead = _NewLead(_new_lead(submission, meta, now, job.email_key))
            lead.row["duplicate_of"] = similar.id if similar is not None else None
            self.new_leads.append(lead)
            outcome = "created"
        receipt_id = enquiry.id if enquiry is not None else lead.receipt_id
        if not submission.is_spam:
            self.remember(lead)
            self.messages += message_rows_for(
                self.settings,
                lead_id=lead.id,
                enquiry_id=enquiry.id if enquiry else None,
                visitor_email=lead.email,
                # The form just sent decides (a follow-up through another form tells that
                # form's people), as it is what this visitor chose.
                routing=submission.form.routing,
                now=now,
            )
        if key is not None:
            record = IdempotencyRecord(
                key=key.digest,
                created_at=now,
                lead_id=lead.id,
                receipt_id=receipt_id,
                fingerprint=key.fingerprint,
            )
            self.records[key.digest] = record
            self.session.add(record)
        return Receipt(
            receipt_id, lead.id, outcome, spam=submission.is_spam, notify=not submission.is_spam
        )

    async def write(self) -> None:
        """New leads first (enquiries and messages refer to them), then what the session
        holds (enquiries, returning visitors' leads, idempotency keys), then the messages."""
        if self.new_leads:
            await self.session.execute(INSERT_LEADS, [lead.values() for lead in self.new_leads])
        await self.session.flush()
        if self.messages:
            await self.session.execute(INSERT_MESSAGES, self.messages)


# Core INSERTs on the tables themselves: executemany, no ORM bulk machinery per row.
INSERT_LEADS = insert(cast("Table", Lead.__table__))  # type: ignore[attr-defined]
INSERT_MESSAGES = insert(cast("Table", OutboxMessage.__table__))  # type: ignore[attr-defined]


def _keys(email_key: str | None, phone: str | None) -> list[str]:
    """How a returning visitor is recognised: by email, or by phone."""
    return [k for k in (email_key and f"e:{email_key}", phone and f"p:{phone}") if k]


def _agrees(lead: AnyLead, *, email_key: str | None, phone: str | None) -> bool:
    """The same email and no other phone, or the same phone and no other email. A detail
    the lead lacks counts as other: a submission never adds contact details to a lead."""
    same_email = email_key is not None and email_key == lead.email_key
    same_phone = phone is not None and phone == lead.phone
    return (same_email and (phone is None or same_phone)) or (
        same_phone and (email_key is None or same_email)
    )


def _enquiry_fields(submission: Submission, meta: RequestMeta) -> dict[str, Any]:
    return {
        "form": submission.form.slug,
        "message": submission.message,
        "interest": submission.interest,
        "preferred_contact": submission.preferred_contact,
        "consent_version": submission.form.consent_version,
        "consent_text": submission.form.consent,
        "language": submission.form.language,
        "client_ip": meta.client_ip,
        "user_agent": meta.user_agent,
        **submission.attribution,
    }


def _new_lead(
    submission: Submission, meta: RequestMeta, now: datetime, email_key: str | None
) -> dict[str, Any]:
    """A new lead's row: every column, as the model's defaults would have it."""
    return {
        **NEW_LEAD_DEFAULTS,
        "id": uuid.uuid4(),
        "receipt_id": uuid.uuid4(),
        "created_at": now,
        "updated_at": now,
        "last_enquiry_at": now,
        "consent_at": now,
        "name": submission.name,
        "email": submission.email,
        "email_key": email_key,
        "phone": submission.phone,
        "spam": submission.is_spam,
        "spam_reason": submission.spam_reason,
        **_enquiry_fields(submission, meta),
    }


# The rest of a new lead's columns: what Lead() would have set (tests/test_intake*.py read
# stored leads back through the ORM).
NEW_LEAD_DEFAULTS: dict[str, Any] = {
    "status": LeadStatus.NEW.value,
    "enquiry_count": 1,
    "consent_withdrawn_at": None,
    "consent_withdrawn_by": None,
    "duplicate_of": None,
    "assigned_to": None,
    "first_response_at": None,
    "version": 1,
    "merged_into": None,
}


def _add_enquiry(lead: AnyLead, now: datetime) -> None:
    """A returning visitor wrote again. Their lead's contact details and preference stay as
    they were: the enquiry keeps its own, and staff see both."""
    lead.last_enquiry_at = now
    lead.updated_at = now
    lead.enquiry_count += 1
