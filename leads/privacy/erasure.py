"""Erasing a person on request: every lead of theirs (matched by the address or number,
as a returning visitor is) with all its enquiries, timeline and notifications, and every
enquiry they sent under somebody else's lead (see :mod:`leads.storage.forgetting`).

What remains is one audit entry, ``erasure``, saying how it was asked (by email or by
phone) and how much went, by kind: never the address or number itself. Entries about the
removed leads stay in the audit log without their lead's id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, RemovedKind
from leads.privacy.matching import Subject, lock_subject, subject_enquiries, subject_leads
from leads.staff.audit import record_audit
from leads.storage.forgetting import Counts, forget, rehearse

# Retention also ends staff sessions; an erasure has none to count.
ERASED_KINDS = tuple(kind for kind in RemovedKind if kind != RemovedKind.SESSIONS)


async def erase_subject(
    *,
    session: AsyncSession,
    subject: Subject,
    actor: str,
    now: datetime,
    address: str | None = None,
    dry_run: bool = False,
) -> dict[RemovedKind, int]:
    """Remove (or, dry, only count) everything held about ``subject``, in the caller's
    transaction; the counts by kind."""
    await lock_subject(session=session, subject=subject)
    leads = await subject_leads(session=session, subject=subject)
    lead_ids = [lead.id for lead in leads]
    mine = set(lead_ids)
    enquiries = await subject_enquiries(session=session, subject=subject, lead_ids=lead_ids)
    strays = [e.id for e in enquiries if e.lead_id not in mine]

    async def remove() -> Counts:
        return await forget(session=session, lead_ids=lead_ids, stray_enquiry_ids=strays)

    counts = await (rehearse(session, remove) if dry_run else remove())
    erased: dict[RemovedKind, int] = {kind: counts[kind] for kind in ERASED_KINDS}
    if not dry_run:
        await record_audit(
            session=session,
            actor=actor,
            action=AuditAction.ERASURE,
            now=now,
            address=address,
            detail={"by": subject.by, **{kind.value: n for kind, n in erased.items()}},
        )
    return erased
