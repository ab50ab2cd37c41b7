"""Receipts: the id a visitor is told for each submission, and answering a repeated
``Idempotency-Key`` with its first receipt (or refusing it, for another submission)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from leads.core.vocabulary import REPLAY_WINDOW
from leads.errors import IdempotencyKeyReused, LeadsError
from leads.intake.submission import Submission
from leads.storage.database import Database
from leads.storage.leads import get_idempotency_record
from leads.storage.models import IdempotencyRecord
from leads.storage.types import utcnow


@dataclass(frozen=True, slots=True)
class Receipt:
    id: uuid.UUID  # this submission's receipt: the only id the visitor is told
    lead_id: uuid.UUID
    outcome: str  # "created" | "merged" | "replayed"
    spam: bool
    notify: bool = False  # notifications are waiting: wake the dispatcher


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's ``Idempotency-Key`` as stored: scoped to the client, tied to a submission."""

    digest: str  # of the key and its scope: the stored key
    fingerprint: str  # of what was submitted with it

    @classmethod
    def of(
        cls, key: str, submission: Submission, *, client_ip: str | None, origin: str | None
    ) -> IdempotencyKey:
        """Scoped to the client's address and the page's origin: another client using the
        same key (a copied snippet, a guessed key) starts its own record, never gets this
        one's answer. Tokens are left out of the fingerprint: a retry may carry a fresh one."""
        scope = "\x00".join((client_ip or "", (origin or "").lower(), key))
        content = [
            submission.form.slug,
            submission.name,
            submission.email,
            submission.phone,
            submission.preferred_contact,
            submission.message,
            submission.interest,
            sorted(submission.attribution.items()),
        ]
        return cls(
            digest=hashlib.sha256(scope.encode()).hexdigest(),
            fingerprint=hashlib.sha256(json.dumps(content).encode()).hexdigest(),
        )


async def replay_of(database: Database, key: IdempotencyKey) -> Receipt | None:
    """The first answer to ``key``, if it was given in the last 24 hours; raises
    :class:`IdempotencyKeyReused` if that answer was for another submission."""
    async with database.reading() as session:
        record = await get_idempotency_record(session=session, key=key.digest)
    if record is None or record.created_at <= utcnow() - REPLAY_WINDOW:
        return None
    found = answer(record, key)
    if isinstance(found, LeadsError):
        raise found
    return found


def answer(record: IdempotencyRecord, key: IdempotencyKey) -> Receipt | LeadsError:
    """What a repeated key gets: the first receipt, for the same submission only. (A record
    from before fingerprints has none, and its receipt was the lead's id.)"""
    if record.fingerprint is not None and record.fingerprint != key.fingerprint:
        return IdempotencyKeyReused()
    return Receipt(record.receipt_id or record.lead_id, record.lead_id, "replayed", spam=False)
