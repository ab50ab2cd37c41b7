"""Group commit keeps every promise of the intake contract: a 201 means on disk (even when
the process is killed mid-burst), the rules still hold inside a shared transaction, and a
full queue answers 503 at once instead of growing without bound."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, Query, make_settings, serving_app
from tests.servers import leads_process


@pytest.mark.slow
async def test_sigkill_during_a_burst_loses_no_acknowledged_lead(
    database_url: str, query: Query
) -> None:
    env = {
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",
        "LEADS_LOG_LEVEL": "warning",
    }
    acknowledged: list[str] = []
    with leads_process(env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            # 64 in flight at a time: the server sees a burst, and httpx's pool is spared
            # hundreds of waiting requests (it slows down badly with them).
            gate = asyncio.Semaphore(64)

            async def submit(n: int) -> None:
                body = {"name": f"Burst {n}", "email": f"burst{n}@example.com", "consent": True}
                try:
                    async with gate:
                        response = await client.post("/api/leads", json=body)
                except httpx.TransportError:
                    return  # killed before it answered: not acknowledged, no promise made
                if response.status_code == 201:
                    acknowledged.append(response.json()["id"])
                    if len(acknowledged) == 150:
                        os.kill(service.process.pid, signal.SIGKILL)

            await asyncio.gather(*(submit(n) for n in range(600)))
        if service.process.poll() is None:  # a slow machine answered fewer than 150 in time
            os.kill(service.process.pid, signal.SIGKILL)
        assert await asyncio.to_thread(service.process.wait, 20) == -signal.SIGKILL
    assert len(acknowledged) >= 150
    rows = await query("SELECT receipt_id FROM leads")
    stored = {str(uuid.UUID(str(row["receipt_id"]))) for row in rows}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged leads lost"
    # Every stored lead has its notification: written in the same transaction.
    orphans = await query(
        "SELECT count(*) AS n FROM leads WHERE id NOT IN (SELECT lead_id FROM outbox)"
    )
    assert orphans == [{"n": 0}]


async def test_one_batch_still_merges_a_returning_visitor_and_replays_keys(
    make_client, lead, query: Query, lead_of
) -> None:
    client = await make_client()
    same_person = [
        client.post("/api/leads", json=lead(email="same@example.com", message=f"try {n}"))
        for n in range(10)
    ]
    keyed = lead()
    same_key = [
        client.post("/api/leads", json=keyed, headers={"Idempotency-Key": "k-1"}) for _ in range(5)
    ]
    others = [client.post("/api/leads", json=lead()) for _ in range(10)]
    responses = await asyncio.gather(*same_person, *same_key, *others)
    assert {r.status_code for r in responses} == {201}
    assert len({await lead_of(r.json()["id"]) for r in responses[:10]}) == 1
    assert len({r.json()["id"] for r in responses[:10]}) == 10  # a receipt each
    assert len({r.json()["id"] for r in responses[10:15]}) == 1
    rows = await query("SELECT email, enquiry_count FROM leads ORDER BY enquiry_count DESC")
    assert len(rows) == 1 + 1 + 10
    assert rows[0] == {"email": "same@example.com", "enquiry_count": 10}
    assert len(await query("SELECT id FROM enquiries")) == 9


async def test_a_full_queue_answers_503_at_once_then_recovers(tmp_path: Path, lead) -> None:
    path = tmp_path / "busy.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{path}", intake_queue_size=3, database_timeout_seconds=30
    )
    async with serving_app(settings) as client:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # the writer blocks on its first batch
        try:
            first = asyncio.create_task(client.post("/api/leads", json=lead()))
            await asyncio.sleep(0.2)  # let the writer take it and block on the lock
            waiting = [
                asyncio.create_task(client.post("/api/leads", json=lead())) for _ in range(3)
            ]
            await asyncio.sleep(0.2)
            refused = await asyncio.wait_for(client.post("/api/leads", json=lead()), 5)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert refused.status_code == 503
        assert refused.json()["code"] == "intake_busy"
        assert refused.headers["retry-after"] == "1"
        done = await asyncio.gather(first, *waiting)
        assert [r.status_code for r in done] == [201] * 4


@pytest.mark.postgres
async def test_writers_on_postgresql_share_the_load_without_duplicates(
    postgres_url: str, lead
) -> None:
    settings = make_settings(postgres_url)
    async with serving_app(settings) as client:
        responses = await asyncio.gather(
            *(client.post("/api/leads", json=lead()) for _ in range(200))
        )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 200
