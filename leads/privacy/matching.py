"""Who is asked about: a person named by their email address or phone number, found as the
intake finds a returning visitor (``Lead.email_key``, an enquiry's address lowercased; the
phone in E.164). Their leads, and their enquiries wherever they are filed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.contacts import email_key, phone_key
from leads.errors import FieldError, InvalidSubmission
from leads.storage.leads import lock_contacts
from leads.storage.models import Enquiry, Lead


@dataclass(frozen=True, slots=True)
class Subject:
    """A person, by one contact detail in the form the database holds it."""

    by: Literal["email", "phone"]
    key: str  # lowercased address, or E.164


def read_subject(*, email: object, phone: object, region: str) -> Subject:
    """Exactly one of ``email`` and ``phone`` (None when not given); the phone read in
    ``region`` when written without +country. InvalidSubmission naming the field."""
    if email is not None and phone is not None:
        message = "Send either email or phone, not both: erase or export one at a time."
        raise InvalidSubmission([FieldError("phone", "one_of", message)])
    if email is None and phone is None:
        message = "Send the person's email or phone."
        raise InvalidSubmission([FieldError("email", "required", message)])
    field: Literal["email", "phone"] = "email" if email is not None else "phone"
    value = email if email is not None else phone
    if not isinstance(value, str):
        raise InvalidSubmission([FieldError(field, "invalid_type", f"{field} must be a string.")])
    try:
        key = email_key(value) if field == "email" else phone_key(value, region)
    except ValueError as exc:
        raise InvalidSubmission(
            [FieldError(field, f"invalid_{field}", f"{field} {exc}.")]
        ) from None
    return Subject(by=field, key=key)


async def lock_subject(*, session: AsyncSession, subject: Subject) -> None:
    """On PostgreSQL, wait for a submission by this person being stored now (the intake
    takes the same advisory lock), so none slips in beside an erasure."""
    await lock_contacts(session=session, keys=[subject.key])


async def subject_leads(*, session: AsyncSession, subject: Subject) -> list[Lead]:
    where = (
        col(Lead.email_key) == subject.key
        if subject.by == "email"
        else col(Lead.phone) == subject.key
    )
    query = select(Lead).where(where).order_by(col(Lead.created_at), col(Lead.id))
    return list((await session.scalars(query)).all())


async def subject_enquiries(
    *, session: AsyncSession, subject: Subject, lead_ids: list[uuid.UUID]
) -> list[Enquiry]:
    """Every enquiry under these leads, and every enquiry this person sent under another."""
    mine = (
        func.lower(col(Enquiry.email)) == subject.key
        if subject.by == "email"
        else col(Enquiry.phone) == subject.key
    )
    query = (
        select(Enquiry)
        .where(or_(mine, col(Enquiry.lead_id).in_(lead_ids)))
        .order_by(col(Enquiry.created_at), col(Enquiry.id))
    )
    return list((await session.scalars(query)).all())
