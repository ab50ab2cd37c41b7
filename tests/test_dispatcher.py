"""The dispatcher's promises. In one process, through a recording channel standing in for
SMTP: retries, dead letters, a bug retried rather than lost, and stopping with a delivery
in flight. With real processes and a real SMTP server (the one thing both sides of a
process boundary can see): at least once across a crash (same Message-ID), graceful
shutdown on SIGTERM, and several dispatchers on one PostgreSQL delivering each message
exactly once."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.forms import load_forms
from leads.core.vocabulary import Channel
from leads.errors import PermanentDeliveryError, TransientDeliveryError
from leads.notify.channels.recording import RecordingChannel
from leads.notify.dispatcher import CONCURRENCY, Dispatcher
from leads.settings import Settings
from leads.storage import outcomes
from leads.storage.database import Database
from leads.storage.models import OutboxMessage
from leads.storage.outbox import claim_due, next_due, release_claims
from leads.storage.types import utcnow
from tests.conftest import SECRET, Query, make_settings, migrate, serving_app
from tests.mail import MailServer, mail_server
from tests.servers import Service, leads_process
from tests.support import eventually

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"dispatcher-test-webhook-key-0123").decode()
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


async def stored(settings: Settings, lead: Any, count: int) -> Database:
    """``count`` submissions through the app, then a Database on its database (for the
    caller to close)."""
    async with serving_app(settings) as client:
        for _ in range(count):
            assert (await client.post("/api/leads", json=lead())).status_code == 201
    return Database.from_settings(settings)


async def claim_as(
    session: AsyncSession, worker: str, now: datetime, **options: Any
) -> list[OutboxMessage]:
    """``claim_due`` by ``worker`` at ``now``, leased for a minute."""
    lease_until = now + timedelta(minutes=1)
    return await claim_due(
        session=session, worker=worker, now=now, lease_until=lease_until, **options
    )


async def wait_outbox(query: Query, predicate, within: float = 30) -> list[dict]:
    deadline = time.monotonic() + within
    while True:
        rows = await query("SELECT * FROM outbox")
        if rows and predicate(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox did not settle: {rows}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def dispatching(
    database_url: str, channel: RecordingChannel, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Dispatcher]]:
    """The app (which writes SMTP messages to the outbox), and a dispatcher of our own that
    delivers them through ``channel`` instead; stopped when the block ends."""
    settings = make_settings(
        database_url,
        dispatcher="worker",
        smtp_url="smtp://127.0.0.1:9?starttls=off",  # never dialled: the channel stands in
        inbox="desk@clinic.example",
        retry_base_seconds=0.05,
        **overrides,
    )
    async with serving_app(settings) as client, httpx.AsyncClient() as http:
        database = Database.from_settings(settings)
        forms = load_forms(settings.forms_file)
        dispatcher = Dispatcher(settings, database, forms, http, channels={Channel.SMTP: channel})
        dispatcher.start()
        try:
            yield client, dispatcher
        finally:
            await dispatcher.stop()
            await database.close()


async def submit(client: httpx.AsyncClient, dispatcher: Dispatcher, body: dict) -> None:
    assert (await client.post("/api/leads", json=body)).status_code == 201
    dispatcher.wake()  # as the app wakes its own dispatcher


async def test_a_transient_failure_is_retried_with_the_same_message(
    database_url: str, lead, query: Query
) -> None:
    channel = RecordingChannel([TransientDeliveryError("busy"), TransientDeliveryError("busy")])
    async with dispatching(database_url, channel) as (client, dispatcher):
        await submit(client, dispatcher, lead())
        async with asyncio.timeout(20):
            await channel.wait_until(delivered=1)
        rows = await wait_outbox(query, lambda rows: rows[0]["status"] == "delivered")
    assert len(channel.attempted) == 3
    assert {n.message.id for n in channel.attempted} == {uuid.UUID(str(rows[0]["id"]))}
    assert [(r["channel"], r["kind"], r["attempts"]) for r in rows] == [("smtp", "lead.created", 3)]
    assert rows[0]["last_error"] == "busy"


async def test_a_permanent_failure_is_a_dead_letter_and_never_sent_again(
    database_url: str, lead, query: Query
) -> None:
    channel = RecordingChannel([PermanentDeliveryError("mailbox unavailable")])
    async with dispatching(database_url, channel) as (client, dispatcher):
        await submit(client, dispatcher, lead())
        await wait_outbox(query, lambda rows: rows[0]["status"] == "dead")
        # Another lead, delivered: the dispatcher has gone round since the dead letter.
        await submit(client, dispatcher, lead())
        await wait_outbox(
            query, lambda rows: sorted(r["status"] for r in rows) == ["dead", "delivered"]
        )
        rows = await query("SELECT status, attempts, last_error FROM outbox ORDER BY created_at")
    assert rows == [
        {"status": "dead", "attempts": 1, "last_error": "mailbox unavailable"},
        {"status": "delivered", "attempts": 1, "last_error": None},
    ]
    assert len(channel.attempted) == 2


async def test_an_unexpected_error_is_retried_not_lost(
    database_url: str, lead, query: Query
) -> None:
    channel = RecordingChannel([RuntimeError("a bug")])
    async with dispatching(database_url, channel) as (client, dispatcher):
        await submit(client, dispatcher, lead())
        rows = await wait_outbox(query, lambda rows: rows[0]["status"] == "delivered")
    assert rows[0]["attempts"] == 2
    assert rows[0]["last_error"] == "unexpected RuntimeError"


async def test_a_claim_that_keeps_failing_holds_back_no_finished_delivery(
    tmp_path: Path, lead
) -> None:
    """A turn records what finished and claims more in one transaction. Should the claim
    fail every time (here SQLite refuses every claim from a moment on, as a bug or a row it
    cannot read would), what finished is still recorded, on its own: a delivered message
    does not stay claimed, to be sent again by whoever takes over once its lease runs out."""
    database_file = tmp_path / "leads.db"
    settings = make_settings(
        f"sqlite+aiosqlite:///{database_file}",
        dispatcher="worker",
        smtp_url="smtp://127.0.0.1:9?starttls=off",  # never dialled: the channel stands in
        inbox="desk@clinic.example",
        autoreply=False,
    )
    hold = asyncio.Event()
    channel = RecordingChannel(hold=hold)

    def rows() -> list[tuple[str, str | None]]:
        with contextlib.closing(sqlite3.connect(database_file)) as db:
            return db.execute(
                "SELECT status, claimed_by FROM outbox ORDER BY created_at"
            ).fetchall()

    async with serving_app(settings) as client, httpx.AsyncClient() as http:
        database = Database.from_settings(settings)
        channels = {Channel.SMTP: channel}
        dispatcher = Dispatcher(
            settings, database, load_forms(None), http, channels=channels, poll_seconds=0.2
        )
        dispatcher.start()
        try:
            await submit(client, dispatcher, lead())
            async with asyncio.timeout(20):
                await channel.wait_until(attempted=1)  # claimed, and held in flight
            with contextlib.closing(sqlite3.connect(database_file)) as db:
                db.execute(REFUSE_CLAIMS)
                db.commit()
            await submit(client, dispatcher, lead())  # due, and never claimable
            hold.set()  # the first delivery finishes

            async def first_recorded() -> bool:
                return rows()[0] == ("delivered", None)

            await eventually(first_recorded, what="the finished delivery recorded", within=20)
            assert rows()[1] == ("pending", None)  # the second was never claimed
        finally:
            await dispatcher.stop()
            await database.close()
    assert len(channel.delivered) == 1


# From the moment it is made, no outbox row can be claimed (a failing statement, not an
# unavailable database); recording an outcome, which clears the claim, still works.
REFUSE_CLAIMS = """
CREATE TRIGGER refuse_claims BEFORE UPDATE OF claimed_by ON outbox
WHEN NEW.claimed_by IS NOT NULL AND OLD.claimed_by IS NULL
BEGIN SELECT RAISE(ABORT, 'claims refused'); END
"""


async def test_the_autoreply_goes_through_the_email_channel_after_the_clinic_email(
    database_url: str, lead, query: Query
) -> None:
    channel = RecordingChannel()
    async with dispatching(database_url, channel, autoreply=True) as (client, dispatcher):
        await submit(client, dispatcher, lead())
        async with asyncio.timeout(20):
            await channel.wait_until(delivered=2)
    kinds = sorted((n.message.channel, n.message.kind) for n in channel.delivered)
    assert kinds == [("smtp", "autoreply"), ("smtp", "lead.created")]


async def test_stopping_waits_for_a_delivery_in_flight(
    database_url: str, lead, query: Query
) -> None:
    hold = asyncio.Event()
    channel = RecordingChannel(hold=hold)
    async with dispatching(database_url, channel, shutdown_grace_seconds=10) as (
        client,
        dispatcher,
    ):
        await submit(client, dispatcher, lead())
        async with asyncio.timeout(20):
            await channel.wait_until(attempted=1)
        stopping = asyncio.create_task(dispatcher.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # still waiting for the delivery
        hold.set()
        await stopping
    rows = await query("SELECT status, attempts FROM outbox")
    assert rows == [{"status": "delivered", "attempts": 1}]


async def test_stopping_past_the_grace_period_gives_the_claim_back(
    database_url: str, lead, query: Query
) -> None:
    channel = RecordingChannel(hold=asyncio.Event())  # never released
    async with dispatching(database_url, channel, shutdown_grace_seconds=0.1) as (
        client,
        dispatcher,
    ):
        await submit(client, dispatcher, lead())
        async with asyncio.timeout(20):
            await channel.wait_until(attempted=1)
        async with asyncio.timeout(5):
            await dispatcher.stop()
    rows = await query("SELECT status, attempts, claimed_by, claimed_until FROM outbox")
    assert rows == [{"status": "pending", "attempts": 0, "claimed_by": None, "claimed_until": None}]


@pytest.mark.slow
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
        # The server's thread records the message after the kill: wait for it, not race it.
        assert len(await asyncio.to_thread(smtp.wait_for, 1, 10)) == 1
        smtp.on_data = None
        rows = await query("SELECT status, attempts FROM outbox")
        assert rows == [{"status": "pending", "attempts": 1}]

        with leads_process(env):
            mails = await asyncio.to_thread(smtp.wait_for, 2, 30)
        assert mails[0].message["Message-ID"] == mails[1].message["Message-ID"]
        rows = await wait_outbox(query, lambda rows: rows[0]["status"] == "delivered")
        assert rows[0]["attempts"] == 2


@pytest.mark.slow
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


@pytest.mark.slow
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
@pytest.mark.slow
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
            for worker in (w1, w2, w3):  # each has its signal handlers once it says this

                async def started(worker: Service = worker) -> bool:
                    return "delivering notifications" in worker.output()

                await eventually(started, what="a worker's start")
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
            # A stopping worker finishes (or hands back) what it has in flight before it
            # exits: once all three have exited, any duplicate would have arrived.
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
    first, second = await stored(settings, lead, 6), Database.from_settings(settings)
    now = utcnow()

    async def claim(database: Database, worker: str) -> set[uuid.UUID]:
        async with database.writing() as session:
            claimed = await claim_as(session, worker, now, limit=10)
        return {m.id for m in claimed}

    try:
        a, b = await asyncio.gather(claim(first, "A"), claim(second, "B"))
    finally:
        await first.close()
        await second.close()
    assert not a & b
    assert len(a | b) == 6


async def test_a_claim_looks_past_the_routes_it_fills(database_url: str, lead) -> None:
    """Webhooks due behind a backlog of emails: the claim seeks into each route with room,
    so the claim that fills SMTP's slots takes the webhooks too (each route its own slots),
    in the order they came due, and nothing that was not due."""
    settings = make_settings(
        database_url,
        dispatcher="worker",
        smtp_url="smtp://127.0.0.1:9?starttls=off",
        inbox="desk@clinic.example",
        webhook_urls="https://hooks.example/lead",
        webhook_secret=WEBHOOK_SECRET,
    )
    database = await stored(settings, lead, 6)
    now = utcnow()
    try:
        async with database.writing() as session:
            rows = list(await session.scalars(select(OutboxMessage)))
            for i, row in enumerate(sorted(rows, key=lambda r: (r.channel, r.created_at))):
                row.next_attempt_at = now - timedelta(hours=2) + timedelta(seconds=i)
            webhooks = sorted((r for r in rows if r.channel == Channel.WEBHOOK), key=_due_at)
            webhooks[-1].next_attempt_at = now + timedelta(hours=1)  # not due yet
        async with database.writing() as session:
            claimed = await claim_as(session, "A", now, limit=6, per_route=2)
    finally:
        await database.close()
    assert [(m.channel, m.id) for m in claimed if m.channel == Channel.WEBHOOK] == [
        (Channel.WEBHOOK, w.id) for w in webhooks[:2]
    ]
    assert sum(1 for m in claimed if m.channel == Channel.SMTP) == 2
    assert len(claimed) == 4


async def test_a_claim_over_many_routes_gives_each_its_room_in_order(
    database_url: str, lead
) -> None:
    """Twenty webhook URLs and the inbox: more routes than one seek statement serves. The
    claim takes the ten messages that came due first, one per route (the second lead's:
    each route's earliest), in that order across the statements; the rest wait."""
    urls = [f"https://hooks.example/{i}" for i in range(20)]
    settings = make_settings(
        database_url,
        dispatcher="worker",
        smtp_url="smtp://127.0.0.1:9?starttls=off",
        inbox="desk@clinic.example",
        webhook_urls=",".join(urls),
        webhook_secret=WEBHOOK_SECRET,
        autoreply=False,
    )
    database = await stored(settings, lead, 2)
    now = utcnow()
    try:
        async with database.writing() as session:
            rows = list(await session.scalars(select(OutboxMessage)))
            by_arrival = sorted(rows, key=lambda r: (r.created_at, r.channel, r.target or ""))
            for i, row in enumerate(by_arrival):  # the last to arrive due first
                row.next_attempt_at = now - timedelta(minutes=1 + i)
        async with database.writing() as session:
            claimed = await claim_as(session, "A", now, limit=10, per_route=1)
    finally:
        await database.close()
    assert len(rows) == 42
    second_lead = by_arrival[21:]  # due first, one message per route
    assert [m.id for m in claimed] == [r.id for r in reversed(second_lead)][:10]


async def test_a_stalled_route_with_a_backlog_holds_back_no_other_route(
    database_url: str, lead
) -> None:
    """SMTP stalls with 50 emails waiting, and every webhook came due after all of them:
    the dispatcher fills SMTP's slots with its oldest emails and no more, and still
    delivers every webhook meanwhile; once SMTP answers again, the emails go too."""
    settings = make_settings(
        database_url,
        dispatcher="worker",
        smtp_url="smtp://127.0.0.1:9?starttls=off",  # never dialled: the channels stand in
        inbox="desk@clinic.example",
        webhook_urls="https://hooks.example/lead",
        webhook_secret=WEBHOOK_SECRET,
        autoreply=False,
    )
    database = await stored(settings, lead, 50)
    async with database.writing() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
        emails = sorted((r for r in rows if r.channel == Channel.SMTP), key=lambda r: r.created_at)
        webhooks = [r for r in rows if r.channel == Channel.WEBHOOK]
        start = utcnow() - timedelta(hours=1)
        for i, row in enumerate(emails + webhooks):
            row.next_attempt_at = start + timedelta(seconds=i)
        oldest_emails = [r.id for r in emails[:CONCURRENCY]]
    stalled = asyncio.Event()
    smtp, webhook = RecordingChannel(hold=stalled), RecordingChannel()
    async with httpx.AsyncClient() as http:
        channels = {Channel.SMTP: smtp, Channel.WEBHOOK: webhook}
        dispatcher = Dispatcher(settings, database, load_forms(None), http, channels=channels)
        dispatcher.start()
        try:
            async with asyncio.timeout(20):
                await webhook.wait_until(delivered=50)
            assert [n.message.id for n in smtp.attempted] == oldest_emails
            stalled.set()
            async with asyncio.timeout(20):
                await smtp.wait_until(delivered=50)
        finally:
            await dispatcher.stop()
            await database.close()
    assert sorted(n.message.id for n in webhook.delivered) == sorted(r.id for r in webhooks)


async def test_a_turns_outcomes_are_one_statement_of_each_kind(database_url: str, lead) -> None:
    """Delivered, retried and dead letters of one turn are written with one statement per
    kind however many there are, each only while its claim is still the recorder's: a
    message another dispatcher has claimed meanwhile keeps that claim."""
    settings = make_settings(database_url, dispatcher="worker")
    database = await stored(settings, lead, 6)
    now = utcnow()
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    try:
        async with database.writing() as session:
            claimed = await claim_as(session, "A", now, limit=6)
        ids = [m.id for m in claimed]
        async with database.writing() as session:  # A's lease ran out; B took one over
            await session.execute(
                update(OutboxMessage).where(col(OutboxMessage.id) == ids[5]).values(claimed_by="B")
            )
        later = now + timedelta(minutes=5)
        finished: list[outcomes.Outcome] = [
            outcomes.Delivered(ids[0]),
            outcomes.Delivered(ids[1]),
            outcomes.Retry(ids[2], later, "SMTP 451"),
            outcomes.Dead(ids[3], "SMTP 550"),
            outcomes.Dead(ids[4], "SMTP 550"),
            outcomes.Delivered(ids[5]),  # B's now: not A's to record
        ]
        event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
        async with database.writing() as session:
            await outcomes.record_outcomes(session=session, worker="A", now=now, outcomes=finished)
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
        async with database.reading() as session:
            rows = {m.id: m for m in await session.scalars(select(OutboxMessage))}
    finally:
        await database.close()
    assert len([s for s in statements if s.startswith("UPDATE outbox")]) == 3, statements
    statuses = ["delivered", "delivered", "pending", "dead", "dead", "pending"]
    assert [rows[i].status for i in ids] == statuses
    assert rows[ids[2]].next_attempt_at == later
    assert rows[ids[2]].last_error == "SMTP 451"
    assert rows[ids[3]].last_error == "SMTP 550"
    assert [rows[i].claimed_by for i in ids] == [None] * 5 + ["B"]
    assert rows[ids[0]].delivered_at == now


def _due_at(message: OutboxMessage) -> datetime:
    return message.next_attempt_at


class MovedClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def test_a_message_in_flight_is_never_claimed_again_even_past_its_lease(
    database_url: str, lead, query: Query
) -> None:
    """The clock jumps past a lease while its delivery is still in flight (a suspended VM,
    a stepped clock): this dispatcher's next claim must not take the message again."""
    hold = asyncio.Event()
    channel = RecordingChannel(hold=hold)
    clock = MovedClock()
    settings = make_settings(
        database_url,
        dispatcher="worker",
        smtp_url="smtp://127.0.0.1:9?starttls=off",  # never dialled: the channel stands in
        inbox="desk@clinic.example",
    )
    async with serving_app(settings) as client, httpx.AsyncClient() as http:
        database = Database.from_settings(settings)
        dispatcher = Dispatcher(
            settings, database, load_forms(None), http, channels={Channel.SMTP: channel},
            clock=clock,
        )  # fmt: skip
        dispatcher.start()
        try:
            assert (await client.post("/api/leads", json=lead())).status_code == 201
            clock.now = utcnow()
            dispatcher.wake()
            async with asyncio.timeout(20):
                await channel.wait_until(attempted=1)
            # An hour on, the lease has run out; a second lead makes the dispatcher claim.
            assert (await client.post("/api/leads", json=lead())).status_code == 201
            clock.now = utcnow() + timedelta(hours=1)
            dispatcher.wake()
            async with asyncio.timeout(20):
                await channel.wait_until(attempted=2)
            hold.set()
            async with asyncio.timeout(20):
                await channel.wait_until(delivered=2)
            rows = await wait_outbox(
                query, lambda rows: {r["status"] for r in rows} == {"delivered"}
            )
        finally:
            await dispatcher.stop()
            await database.close()
    attempted = collections.Counter(n.message.id for n in channel.attempted)
    assert len(attempted) == 2
    assert set(attempted.values()) == {1}  # each attempted once: none claimed twice
    assert [r["attempts"] for r in rows] == [1, 1]


async def test_when_to_wake_skips_any_number_of_full_routes(database_url: str, lead) -> None:
    """The look-up of the next message due leaves out every full route, however many: here
    the inbox's and two webhooks', each with a retry waiting (their parameters once clashed
    with names SQLAlchemy gave the statement's own literals, from the second route on)."""
    hooks = ["https://hooks.example/a", "https://hooks.example/b"]
    settings = make_settings(
        database_url, dispatcher="worker", webhook_urls=",".join(hooks),
        webhook_secret=WEBHOOK_SECRET, autoreply=False, inbox="desk@clinic.example",
        smtp_url="smtp://127.0.0.1:9?starttls=off",  # never dialled: nothing is delivered
    )  # fmt: skip
    database = await stored(settings, lead, 1)
    start = utcnow() + timedelta(hours=1)
    try:
        async with database.writing() as session:
            rows = sorted(
                await session.scalars(select(OutboxMessage)), key=lambda r: r.target or ""
            )
            for i, row in enumerate(rows):  # the inbox's first, then a, then b
                row.next_attempt_at = start + timedelta(minutes=i)
        routes = [(str(r.channel), r.target) for r in rows]
        async with database.reading() as session:
            found = [await next_due(session=session, skipping=routes[:n]) for n in range(4)]
    finally:
        await database.close()
    assert [r.target for r in rows] == [None, *hooks]
    assert found == [*(r.next_attempt_at for r in rows), None]


async def test_a_claim_seeks_the_due_messages_in_order_and_sorts_nothing(
    tmp_path: Path, lead
) -> None:
    """Claimed in the order they came due: a burst in its leads' order, and a retry that
    came due earlier ahead of them. SQLite's plans for what a claim runs: the walk from
    route to route, the pick, and the look-up of when to wake (skipping a full route) only
    seek in ix_outbox_route, and the pick sorts nothing
    (it used to sort every due message to take the first few, then to read past a full
    route's backlog); the claim's and the release's UPDATEs find their rows by primary key
    (they used to walk every pending message on ix_outbox_due). Either way, cost grew with
    the backlog."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'claim.db'}", dispatcher="worker")
    database = await stored(settings, lead, 4)
    ran: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith(("WITH RECURSIVE", "SELECT outbox.id, outbox.channel", "UPDATE")):
            ran.append((statement, parameters))

    try:
        async with database.writing() as session:
            by_arrival = select(OutboxMessage).order_by(col(OutboxMessage.created_at))
            arrival = list(await session.scalars(by_arrival))
            arrival[-1].next_attempt_at = utcnow() - timedelta(hours=1)  # a retry come due
        event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
        async with database.writing() as session:
            now = utcnow()
            claimed = await claim_as(session, "A", now, limit=3, per_route=8)
            await release_claims(session=session, ids=[m.id for m in claimed], worker="A")
            # When to wake, a route's slots full: the others' earliest, found the same way.
            skipped = [(str(claimed[0].channel), claimed[0].target)]
            nothing_else = await next_due(session=session, skipping=skipped)
            earliest = await next_due(session=session)
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
        plans = []
        async with database.reading() as session:
            connection = await session.connection()
            for statement, parameters in ran:
                plan = await connection.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                )
                plans.append((statement.split()[0], [str(step[-1]) for step in plan.all()]))
    finally:
        await database.close()
    assert [m.id for m in claimed] == [arrival[-1].id, *(m.id for m in arrival[:2])]
    (walk, pick, *updates, waiting, _) = plans
    assert (walk[0], pick[0], waiting[0]) == ("WITH", "SELECT", "WITH"), plans
    assert len(updates) == 2, plans
    assert (nothing_else, earliest) == (None, arrival[-1].next_attempt_at)
    for _, steps in (walk, pick, waiting):  # the table read only by seeks in ix_outbox_route
        reads = [step for step in steps if "INDEX" in step]
        assert reads, steps
        assert all("INDEX ix_outbox_route (status=?" in step for step in reads), steps
        assert not any(step.split()[:2] in (["SCAN", "outbox"], ["SCAN", "p"]) for step in steps)
    assert any("next_attempt_at<?" in step for step in pick[1]), pick
    assert not any("TEMP B-TREE" in step for step in pick[1]), pick
    for _, steps in updates:
        assert all("sqlite_autoindex_outbox_1 (id=?)" in step for step in steps), steps
