"""Every consent wording a form has shown, by version: ``consent_versions``.

A row is written the first time a lead or enquiry is stored with that wording, in the same
transaction (so the wording a person agreed to is always on file), and is never changed or
deleted afterwards: a new wording is a new version, and the old one stays. Leads and
enquiries keep their own copy of the text too (``consent_text``); this table is the
catalogue a reviewer reads to see what each form said, and from when.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Column, Table, Text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from leads.storage.database import insert_unless_present
from leads.storage.types import UTCDateTime, utcnow

# (form slug, version, wording)
Wording = tuple[str, str, str]


class ConsentVersion(SQLModel, table=True):
    __tablename__ = "consent_versions"

    form: str = Field(primary_key=True, max_length=50)
    version: str = Field(primary_key=True, max_length=64)
    text: str = Field(sa_column=Column(Text, nullable=False))
    # When a submission was first stored with this wording.
    first_shown_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


async def record_wordings(
    *, session: AsyncSession, wordings: Iterable[Wording], now: datetime
) -> None:
    """Add the wordings not on file yet (one statement, run for each); those on file stay
    as they are."""
    rows = [
        {"form": form, "version": version, "text": text, "first_shown_at": now}
        for form, version, text in sorted(set(wordings))
    ]
    if not rows:
        return
    await session.execute(_insert_unless_on_file(session.get_bind().dialect.name), rows)


@functools.cache  # one per dialect: every intake batch runs it, and building it cost more
def _insert_unless_on_file(dialect: str) -> Any:
    table = cast("Table", ConsentVersion.__table__)  # type: ignore[attr-defined]
    return insert_unless_present(dialect, table, key=["form", "version"])


async def stored_wordings(
    *, session: AsyncSession, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """The wordings on file for these (form, version) pairs."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    found = await session.execute(
        select(ConsentVersion.form, ConsentVersion.version, ConsentVersion.text).where(
            tuple_(col(ConsentVersion.form), col(ConsentVersion.version)).in_(wanted)
        )
    )
    return {(form, version): text for form, version, text in found.all()}
