"""SMTP sessions kept between messages, end to end: POST leads, a real SMTP server
(aiosmtpd, tests/mail.py) counts the sessions they arrive on. A burst shares a few
sessions; a session the server dropped while idle, or that hangs up when it is used again,
is replaced and the email still arrives once; a session idle past the bound (by the
dispatcher's clock) is closed with QUIT; STARTTLS sessions are reused, and shutting down
says QUIT on each and closes it fully (warnings are errors here, unclosed sockets too)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from leads.core.forms import load_forms
from leads.notify.dispatcher import CONCURRENCY, Dispatcher
from leads.storage.database import Database
from leads.storage.types import utcnow
from tests.conftest import make_settings, serving_app
from tests.mail import MailServer, mail_server, make_certificate, smtp_settings
from tests.support import eventually, outbox_rows


def message_ids(server: MailServer) -> collections.Counter[str]:
    return collections.Counter(str(m.message["Message-ID"]) for m in server.received)


async def submit(client: httpx.AsyncClient, count: int, **fields: Any) -> None:
    for i in range(count):
        body = {"name": "Ada Lovelace", "email": f"p{i:02d}@example.com", "consent": True}
        answer = await client.post("/api/leads", json={**body, **fields})
        assert answer.status_code == 201, answer.text


async def test_a_burst_of_emails_shares_a_few_sessions_and_they_end_with_quit(
    database_url: str, query: Any
) -> None:
    with mail_server() as smtp:
        settings = make_settings(database_url, **smtp_settings(smtp))
        async with serving_app(settings) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/api/leads",
                        json={"name": "Ada", "email": f"p{i:02d}@example.com", "consent": True},
                    )
                    for i in range(20)
                )
            )
            assert {a.status_code for a in answers} == {201}
            await asyncio.to_thread(smtp.wait_for, 20)
            rows = await outbox_rows(query, until="delivered", count=20)
        # Shut down: every session still open said QUIT and is closed.
        assert sorted(smtp.quits) == sorted(smtp.sessions)
        assert smtp.open_connections == 0
    assert len(smtp.received) == 20
    assert set(message_ids(smtp).values()) == {1}  # each once
    assert {r["attempts"] for r in rows} == {1}
    assert len(smtp.sessions) < 20 / 2, smtp.sessions


async def test_a_session_the_server_dropped_while_idle_is_not_used(
    database_url: str, query: Any
) -> None:
    with mail_server(idle_timeout=0.3) as smtp:
        settings = make_settings(database_url, **smtp_settings(smtp))
        async with serving_app(settings) as client:
            await submit(client, 1)
            await asyncio.to_thread(smtp.wait_for, 1)

            async def dropped() -> bool:
                return smtp.open_connections == 0  # the server closed the idle session

            await eventually(dropped, what="the server's idle timeout")
            await submit(client, 1, email="later@example.com")
            await asyncio.to_thread(smtp.wait_for, 2)
            rows = await outbox_rows(query, until="delivered", count=2)
    assert len(smtp.received) == 2
    assert len(smtp.sessions) == 2
    assert [r["attempts"] for r in rows] == [1, 1]


async def test_a_reused_session_that_hangs_up_is_replaced_once_and_the_email_sent_once(
    database_url: str, query: Any
) -> None:
    """The server closed the session while it idled and the client has not noticed yet:
    the check before reuse meets the hang-up, and the email goes on a fresh session."""
    with mail_server() as smtp:
        settings = make_settings(database_url, **smtp_settings(smtp))
        async with serving_app(settings) as client:
            await submit(client, 1)
            (first,) = await asyncio.to_thread(smtp.wait_for, 1)
            await outbox_rows(query, until="delivered")
            smtp.hang_ups = 1
            await submit(client, 1, email="later@example.com")
            await asyncio.to_thread(smtp.wait_for, 2)
            rows = await outbox_rows(query, until="delivered", count=2)
    assert smtp.hung_up == [first.session]
    assert len(smtp.received) == 2
    assert set(message_ids(smtp).values()) == {1}
    assert smtp.received[1].session != first.session
    assert [r["attempts"] for r in rows] == [1, 1]  # replaced within the attempt


class MovedClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def dispatcher_on(
    database_url: str, smtp: MailServer, clock: MovedClock
) -> AsyncIterator[tuple[httpx.AsyncClient, Dispatcher]]:
    settings = make_settings(database_url, dispatcher="worker", **smtp_settings(smtp))
    async with serving_app(settings) as client, httpx.AsyncClient() as http:
        database = Database.from_settings(settings)
        dispatcher = Dispatcher(settings, database, load_forms(None), http, clock=clock)
        dispatcher.start()
        try:
            yield client, dispatcher
        finally:
            await dispatcher.stop()
            await database.close()


async def test_a_session_idle_past_the_bound_is_closed_with_quit_not_reused(
    database_url: str, query: Any
) -> None:
    clock = MovedClock()
    with mail_server() as smtp:
        async with dispatcher_on(database_url, smtp, clock) as (client, dispatcher):
            await submit(client, 1)
            clock.now = utcnow()
            dispatcher.wake()
            (first,) = await asyncio.to_thread(smtp.wait_for, 1)
            await outbox_rows(query, until="delivered")
            await submit(client, 1, email="later@example.com")
            clock.now = utcnow() + timedelta(minutes=1)  # far past the idle bound
            dispatcher.wake()
            await asyncio.to_thread(smtp.wait_for, 2)

            async def said_goodbye() -> bool:
                return first.session in smtp.quits

            await eventually(said_goodbye, what="QUIT on the idle session")
    assert len(smtp.sessions) == 2
    assert smtp.received[1].session != first.session


async def test_emails_leave_in_the_order_their_leads_came(database_url: str) -> None:
    with mail_server() as smtp:
        smtp.delay = 0.05  # each message takes a while: a queue forms behind the slots
        settings = make_settings(database_url, **smtp_settings(smtp))
        async with serving_app(settings) as client:
            await submit(client, 30)
            mails = await asyncio.to_thread(smtp.wait_for, 30)
    order = [int(str(m.message["Reply-To"])[1:3]) for m in mails]
    assert sorted(order) == list(range(30))
    late = {lead: abs(position - lead) for position, lead in enumerate(order)}
    assert max(late.values()) <= CONCURRENCY, order


async def test_starttls_sessions_are_reused_and_closed_fully_on_shutdown(
    database_url: str, query: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with mail_server(tls=(cert, key), credentials=("leads@clinic.example", "s3cr@t")) as server:
        settings = make_settings(
            database_url,
            smtp_url=f"smtp://leads%40clinic.example:s3cr%40t@127.0.0.1:{server.port}"
            "?starttls=require",
            inbox="desk@clinic.example",
        )
        async with serving_app(settings) as client:
            for i in range(4):  # one after another: each finds the session the last left
                await submit(client, 1, email=f"p{i}@example.com")
                await asyncio.to_thread(server.wait_for, i + 1)
            await outbox_rows(query, until="delivered", count=4)
        assert server.quits == server.sessions  # it said goodbye
        assert server.open_connections == 0
    assert len(server.sessions) == 1, server.sessions
    assert server.logins == ["leads@clinic.example"]  # AUTH once
    assert set(message_ids(server).values()) == {1}
    gc.collect()  # an unclosed socket or transport warns now, and warnings are errors
