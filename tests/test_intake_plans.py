"""The intake's look-up of a returning visitor's open leads seeks by index however many leads
there are. It runs once per batch, and at a clinic's rates every submission is a batch:
a sequential scan here makes each one read the whole table (on PostgreSQL, 25-40 ms a
submission at 100,000 leads)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Table, event

from leads.storage.database import Database
from leads.storage.leads import find_open_leads
from leads.storage.models import Lead
from leads.storage.types import utcnow
from tests.conftest import Query, make_settings

COPIES = 3000  # enough for PostgreSQL's planner to prefer the indexes it has


def copies_of_a_lead(dialect: str) -> str:
    """SQL that adds COPIES leads like the one stored, each its own person."""
    n = "g.n"
    if dialect == "postgresql":
        new_id, numbers = "gen_random_uuid()", "generate_series(1, :copies) AS g(n)"
    else:
        new_id = "lower(hex(randomblob(16)))"
        numbers = "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s"
        numbers += " WHERE n < :copies) SELECT n FROM s) AS g"
    made = {
        "id": new_id,
        "receipt_id": new_id,
        "email": f"'copy' || {n} || '@example.com'",
        "email_key": f"'copy' || {n} || '@example.com'",
        "phone": f"'+1555' || {n}",
    }
    columns = [c.name for c in cast("Table", Lead.__table__).columns]  # type: ignore[attr-defined]
    values = ", ".join(made.get(c, f"leads.{c}") for c in columns)
    return f"INSERT INTO leads ({', '.join(columns)}) SELECT {values} FROM leads, {numbers}"  # noqa: S608 (column names and SQL of its own)


async def test_a_returning_visitors_open_leads_are_found_by_index(
    database_url: str, client: httpx.AsyncClient, lead: Any, query: Query
) -> None:
    """Per email and per phone through their indexes, then each lead by its primary key:
    no full read of ``leads`` (PostgreSQL read every lead when the two lists were ORed)."""
    email = f"returning.{uuid.uuid4().hex[:8]}@example.com"
    body = lead(email=email, phone="+1 212 555 0142")
    assert (await client.post("/api/leads", json=body)).status_code == 201
    database = Database.from_settings(make_settings(database_url))
    ran: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        ran.append((statement, parameters))

    try:
        dialect = database.engine.dialect.name
        await query(copies_of_a_lead(dialect), copies=COPIES)
        if dialect == "postgresql":
            await query("ANALYZE leads")
        event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
        async with database.reading() as session:
            found = await find_open_leads(
                session=session,
                email_keys=[email],
                phones=["+12125550142"],
                since=utcnow() - timedelta(days=1),
            )
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
        [(statement, parameters)] = ran
        explain = "EXPLAIN" if dialect == "postgresql" else "EXPLAIN QUERY PLAN"
        async with database.engine.connect() as conn:
            plan = (await conn.exec_driver_sql(f"{explain} {statement}", parameters)).all()
    finally:
        await database.close()
    steps = [str(step[-1]) for step in plan]
    assert [found_lead.email for found_lead in found] == [email]
    assert (await query("SELECT count(*) AS n FROM leads"))[0]["n"] == COPIES + 1
    postgresql = dialect == "postgresql"
    full_reads = [
        s for s in steps if ("Seq Scan" in s if postgresql else s.startswith("SCAN leads"))
    ]
    assert not full_reads, steps
    assert any("ix_leads_open_email" in step for step in steps), steps
    assert any("ix_leads_open_phone" in step for step in steps), steps
    if postgresql:
        assert any("Index Scan using leads_pkey" in step for step in steps), steps
