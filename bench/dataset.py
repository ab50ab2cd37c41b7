"""A clinic's three years of leads, written straight into a migrated database for
bench/staff_reads.py: Core multi-row INSERTs into the models' own tables (the schema the
migrations build, which tests/test_migrations.py holds equal to the models).

The spread: leads arrive in time order over three years; the last week's are mostly still
new, older ones were answered (contacted, booked, not interested, unreachable) with a first
response a few hours later; four forms; a third assigned to one of four staff; one in ten
came back (an enquiry); every lead has its clinic email delivered, half an autoreply too;
a third of the answered ones have a status change on their timeline, one in ten a note; a
few are possible duplicates or merged; 1% more are in the spam folder. Phone numbers are in
+1 646, so that the benchmark's visitors (+1 212, bench/loadgen.py) never match one.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from leads.core.forms import DEFAULT_CONSENT
from leads.storage.models import Enquiry, Lead, OutboxMessage
from leads.storage.staff_tables import LeadEvent, User

FORMS = {"dry-needling": 40, "back-pain": 30, "sports-injury": 20, "home-visit": 10}
FORMS_TOML = """\
[forms.back-pain]
title = "Back pain"
[forms.sports-injury]
title = "Sports injury"
[forms.home-visit]
title = "Home visit"
"""
RECENT = {"new": 60, "contacted": 25, "booked": 15}
ANSWERED = {"new": 3, "contacted": 30, "booked": 40, "not_interested": 15, "unreachable": 12}
FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Pedro", "Fatima", "Tom", "Noor", "Ivan",
         "Grace", "Kenji", "Lucia", "Omar", "Sara", "David", "Amara", "Jonas", "Mei",
         "Ruth"]  # fmt: skip
LAST = ["Okafor", "Smith", "Nguyen", "Garcia", "Kowalski", "Haddad", "Brown", "Tanaka",
        "Rossi", "Ivanova", "Murphy", "Silva", "Chen", "Dubois", "Patel", "Jensen", "Novak",
        "Kim", "Schmidt", "Ali", "Moreau", "Cohen", "Walker", "Sato", "Lopez"]  # fmt: skip
MESSAGES = [
    "Is dry needling right for my lower back?",
    "My knee hurts after running, can you help?",
    "Could someone call me about shoulder pain, mornings are best.",
    "I would like to book an assessment for my neck.",
]
SPAN = timedelta(days=3 * 365)
BATCH = 1_000


@dataclass
class Dataset:
    """What was written: lead ids to read, and search terms that find one lead each."""

    leads: int = 0
    spam: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    lead_ids: list[str] = field(default_factory=list)  # a sample of listed leads
    emails: list[str] = field(default_factory=list)  # a sample, each one lead's
    phones: list[str] = field(default_factory=list)  # digits, each one lead's


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _users(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "email": f"therapist{n}@clinic.example",
            "password_hash": "not-a-hash: these accounts never sign in",
            "role": "staff",
            "active": True,
            "created_at": now - SPAN,
            "sessions_valid_from": now - SPAN,
        }
        for n in range(4)
    ]


def _rows(count: int, spam: int, now: datetime, seed: int) -> Iterator[dict[str, list[Any]]]:
    """Batches of rows per table, leads in time order."""
    rng = random.Random(seed)
    users = _users(now)
    yield {"users": users}
    start = now - SPAN
    total = count + spam
    spam_at = set(rng.sample(range(total), spam))
    earlier: list[uuid.UUID] = []
    batch: dict[str, list[Any]] = {"leads": [], "enquiries": [], "outbox": [], "events": []}
    for i in range(total):
        created = start + SPAN * (i + rng.random()) / total
        age = now - created
        is_spam = i in spam_at
        status = "spam" if is_spam else _pick(rng, RECENT if age < timedelta(days=7) else ANSWERED)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{i}@example.com"
        phone = f"+1646{200 + i // 10000:03d}{i % 10000:04d}"
        lead_id = uuid.uuid4()
        came_back = not is_spam and rng.random() < 0.1
        answered = status not in ("new", "spam")
        duplicate = (
            earlier[rng.randrange(len(earlier))] if earlier and rng.random() < 0.01 else None
        )
        merged = earlier[-1] if earlier and not is_spam and rng.random() < 0.005 else None
        batch["leads"].append(
            {
                "id": lead_id, "receipt_id": uuid.uuid4(), "created_at": created,
                "updated_at": created, "last_enquiry_at": created, "form": _pick(rng, FORMS),
                "status": status, "name": f"{first} {last}", "email": email,
                "email_key": email.lower(), "phone": phone, "preferred_contact": "phone",
                "message": rng.choice(MESSAGES), "interest": None,
                "enquiry_count": 2 if came_back else 1, "consent_version": "bench",
                "consent_text": DEFAULT_CONSENT, "consent_at": created,
                "consent_withdrawn_at": None, "consent_withdrawn_by": None, "spam": is_spam,
                "spam_reason": "honeypot" if is_spam else None, "duplicate_of": duplicate,
                "assigned_to": users[rng.randrange(4)]["id"] if rng.random() < 0.33 else None,
                "first_response_at": created + timedelta(hours=rng.uniform(0.2, 30))
                if answered else None,
                "version": 1, "merged_into": merged, "page_url": "https://clinic.example/",
                "referrer": None, "utm_source": None, "utm_medium": None,
                "utm_campaign": None, "utm_term": None, "utm_content": None,
                "client_ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (bench)",
            }
        )  # fmt: skip
        if not is_spam:
            earlier.append(lead_id)
        if came_back:
            batch["enquiries"].append(
                {
                    "id": uuid.uuid4(), "lead_id": lead_id,
                    "created_at": created + timedelta(days=rng.uniform(0.1, 5)),
                    "name": f"{first} {last}", "email": email, "phone": phone,
                    "form": "dry-needling", "message": rng.choice(MESSAGES), "interest": None,
                    "preferred_contact": "phone", "consent_version": "bench",
                    "consent_text": DEFAULT_CONSENT,
                }
            )  # fmt: skip
        if not is_spam:
            kinds = ["lead.created"] + (["autoreply"] if rng.random() < 0.5 else [])
            for kind in kinds:
                sent = created + timedelta(seconds=rng.uniform(0.1, 3))
                batch["outbox"].append(
                    {
                        "id": uuid.uuid4(), "lead_id": lead_id, "enquiry_id": None,
                        "kind": kind, "channel": "smtp", "target": None,
                        "status": "delivered", "attempts": 1, "created_at": created,
                        "scheduled_from": created, "next_attempt_at": created,
                        "claimed_by": None, "claimed_until": None, "delivered_at": sent,
                        "last_error": None,
                    }
                )  # fmt: skip
        if answered and rng.random() < 0.33:
            batch["events"].append(
                _event(lead_id, created, "status", {"from": "new", "to": status})
            )
        if answered and rng.random() < 0.1:
            batch["events"].append(
                _event(lead_id, created, "note", {}, "Called back, left a message")
            )
        if len(batch["leads"]) >= BATCH:
            yield batch
            batch = {"leads": [], "enquiries": [], "outbox": [], "events": []}
    yield batch


def _event(
    lead_id: uuid.UUID,
    created: datetime,
    kind: str,
    detail: dict[str, Any],
    text: str | None = None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(), "lead_id": lead_id, "at": created + timedelta(hours=2), "kind": kind,
        "user_id": None, "actor": "user:therapist0@clinic.example", "detail": detail, "text": text,
    }  # fmt: skip


TABLES = {
    "users": User.__table__,  # type: ignore[attr-defined]
    "leads": Lead.__table__,  # type: ignore[attr-defined]
    "enquiries": Enquiry.__table__,  # type: ignore[attr-defined]
    "outbox": OutboxMessage.__table__,  # type: ignore[attr-defined]
    "events": LeadEvent.__table__,  # type: ignore[attr-defined]
}


async def load(database_url: str, *, count: int, spam: int, seed: int = 7) -> Dataset:
    """Write ``count`` listed leads and ``spam`` spam leads into a migrated database."""
    now = datetime.now(UTC)
    found = Dataset(leads=count, spam=spam)
    rng = random.Random(seed + 1)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for batch in _rows(count, spam, now, seed):
                for name, rows in batch.items():
                    if rows:
                        await conn.execute(insert(TABLES[name]), rows)
                        found.rows[name] = found.rows.get(name, 0) + len(rows)
                for row in batch.get("leads", []):
                    if row["spam"] or row["merged_into"] or rng.random() > 0.02:
                        continue
                    found.lead_ids.append(str(row["id"]))
                    found.emails.append(row["email_key"])
                    found.phones.append(row["phone"].removeprefix("+"))
            if engine.dialect.name == "postgresql":
                for table in TABLES.values():
                    await conn.exec_driver_sql(f"ANALYZE {table.name}")
    finally:
        await engine.dispose()
    return found
