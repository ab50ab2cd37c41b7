"""The dispatcher's promises, with real processes: at least once across a crash (same
Message-ID), graceful shutdown, and several dispatchers on one PostgreSQL delivering each
message exactly once."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from leads.storage.database import Database
from leads.storage.outbox import claim_due
from leads.storage.types import utcnow
from tests.conftest import SECRET, Query, make_settings, migrate, serving_app
from tests.mail import MailServer, mail_server
from tests.servers import leads_process

# uvicorn re-raises SIGTERM once its graceful shutdown is complete.
GRACEFUL = (0, -signal.SIGTERM)


def service_env(database_url: str, smtp: MailServer, **extra: str) -> dict[str, str]:
    return {
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}?starttls=off",
        "LEADS_INBOX": "desk@clinic.example",
        "LEADS_RETRY_BASE_SECONDS": "0.05",
        "LEADS_RATE_LIMIT": "off",
        "LEADS_LOG_LEVEL": "warning",
        **extra,
    }


async def wait_outbox(query: Query, predicate, within: float = 30) -> list[dict]:
    deadline = time.monotonic() + within
    while True:
        rows = await query("SELECT * FROM outbox")
        if rows and predicate(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox did not settle: {rows}")
        await asyncio.sleep(0.05)


async def test_killed_after_sending_before_recording_sends_again_with_the_same_message_id(
    database_url: str, lead, query: Query
) -> None:
    # Short delivery timeout, so the dead process's lease (2 x 1 s + 1 s) runs out soon.
    with mail_server() as smtp:
        env = service_env(database_url, smtp, LEADS_DELIVERY_TIMEOUT_SECONDS="1")
        with leads_process(env) as first:
            # The SMTP server has the whole message when the sender dies: sent, not recorded.
            smtp.on_data = lambda: os.kill(first.process.pid, signal.SIGKILL)
            response = await asyncio.to_thread(
                httpx.post, f"{first.url}/api/leads", json=lead(), timeout=10
            )
            assert response.status_code == 201
            assert await asyncio.to_thread(first.process.wait, 20) == -signal.SIGKILL
        assert len(smtp.received) == 1
        smtp.on_data = None
        rows = await query("SELECT status, attempts FROM outbox")
        assert rows == [{"status": "pending", "attempts": 1}]

        with leads_process(env):
            mails = await asyncio.to_thread(smtp.wait_for, 2, 30)
        assert mails[0].message["Message-ID"] == mails[1].message["Message-ID"]
        rows = await wait_outbox(query, lambda rows: rows[0]["status"] == "delivered")
        assert rows[0]["attempts"] == 2


async def test_sigterm_lets_an_in_flight_delivery_finish(database_url: str, lead, query) -> None:
    with mail_server() as smtp:
        smtp.delay = 1.5
        sending = threading.Event()
        smtp.on_data = sending.set
        env = service_env(database_url, smtp, LEADS_SHUTDOWN_GRACE_SECONDS="10")
        with leads_process(env) as service:
            await asyncio.to_thread(httpx.post, f"{service.url}/api/leads", json=lead())
            assert await asyncio.to_thread(sending.wait, 20)
            service.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(service.process.wait, 30) in GRACEFUL
        assert len(smtp.received) == 1
        rows = await query("SELECT status, attempts FROM outbox")
        assert rows == [{"status": "delivered", "attempts": 1}]


async def test_sigterm_past_the_grace_period_releases_the_claim(
    database_url: str, lead, query
) -> None:
    with mail_server() as smtp:
        smtp.delay = 6
        sending = threading.Event()
        smtp.on_data = sending.set
        env = service_env(
            database_url,
            smtp,
            LEADS_SHUTDOWN_GRACE_SECONDS="0.3",
            LEADS_DELIVERY_TIMEOUT_SECONDS="30",
        )
        with leads_process(env) as service:
            await asyncio.to_thread(httpx.post, f"{service.url}/api/leads", json=lead())
            assert await asyncio.to_thread(sending.wait, 20)
            started = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(service.process.wait, 30) in GRACEFUL
            assert time.monotonic() - started < 5  # did not wait for the slow server
        rows = await query("SELECT status, attempts, claimed_by, claimed_until FROM outbox")
        # Given back at once: no lease to wait out, and the unfinished attempt not counted.
        assert rows == [
            {"status": "pending", "attempts": 0, "claimed_by": None, "claimed_until": None}
        ]


@pytest.mark.postgres
async def test_several_workers_on_one_postgresql_deliver_each_message_once(
    postgres_url: str, lead
) -> None:
    leads_count, workers = 30, 3
    with mail_server() as smtp:
        env = service_env(postgres_url, smtp, LEADS_DISPATCHER="worker")
        await migrate(make_settings(postgres_url))
        with (
            leads_process(env, "worker", ready=False) as w1,
            leads_process(env, "worker", ready=False) as w2,
            leads_process(env, "worker", ready=False) as w3,
        ):
            settings = make_settings(
                postgres_url,
                dispatcher="worker",
                smtp_url=env["LEADS_SMTP_URL"],
                inbox=env["LEADS_INBOX"],
            )
            async with serving_app(settings) as client:
                responses = await asyncio.gather(
                    *(client.post("/api/leads", json=lead()) for _ in range(leads_count))
                )
            assert {r.status_code for r in responses} == {201}
            await asyncio.to_thread(smtp.wait_for, leads_count, 60)
            await asyncio.sleep(1)  # any duplicate would arrive now
            for worker in (w1, w2, w3):
                worker.process.send_signal(signal.SIGTERM)
            codes = [await asyncio.to_thread(w.process.wait, 30) for w in (w1, w2, w3)]
        assert codes == [0] * workers
        ids = collections.Counter(m.message["Message-ID"] for m in smtp.received)
        assert len(ids) == leads_count
        assert set(ids.values()) == {1}


async def test_two_processes_never_claim_the_same_message(database_url: str, lead) -> None:
    """Two dispatchers' claims at the same instant (two engines: as two processes have)."""
    settings = make_settings(database_url, dispatcher="worker")
    async with serving_app(settings) as client:
        for _ in range(6):
            assert (await client.post("/api/leads", json=lead())).status_code == 201
    first, second = Database.from_settings(settings), Database.from_settings(settings)
    now = utcnow()

    async def claim(database: Database, worker: str) -> set[uuid.UUID]:
        async with database.writing() as session:
            claimed = await claim_due(
                session=session, worker=worker, now=now,
                lease_until=now + timedelta(minutes=1), limit=10,
            )  # fmt: skip
        return {m.id for m in claimed}

    try:
        a, b = await asyncio.gather(claim(first, "A"), claim(second, "B"))
    finally:
        await first.close()
        await second.close()
    assert not a & b
    assert len(a | b) == 6
