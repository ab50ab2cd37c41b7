"""Alerts when notifications stall, through a real SMTP server, a real webhook receiver and
dispatchers on a clock the test moves: told once per incident, through the channels that
still work, to the admins (or the inbox when there are none), with counts and a link only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from leads.core.forms import load_forms
from leads.notify.dispatcher import Dispatcher
from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.types import utcnow
from tests.conftest import Query, make_settings, serving_app
from tests.mail import INBOX, MailServer, Received, mail_server, smtp_settings
from tests.support import eventually, leads_cli

SUBJECT = "leads: notifications are not getting through"
SECRET_WORDS = "ALERT-PRIVATE-HIP-STORY"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
ADMIN = "boss@clinic.example"


# -- a real webhook receiver -----------------------------------------------------------------


@dataclass
class Receiver:
    """Records every POST's body; answers from its script, then 200."""

    port: int = 0
    script: list[int] = field(default_factory=list)
    bodies: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.bodies.append((headers, body))
            return self.script.pop(0) if self.script else 200

    def alerts(self) -> list[dict[str, Any]]:
        with self.lock:
            found = [Webhook(WEBHOOK_SECRET).verify(body, headers) for headers, body in self.bodies]
        return [payload for payload in found if payload["type"] == "alert.delivery_stalled"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(receiver.answer(headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- helpers ---------------------------------------------------------------------------------


class Now:
    """The dispatchers' clock: stands where the test puts it; counts its reads (each
    dispatcher turn reads it), so a test can wait for turns to pass."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.moment

    async def turns(self, count: int) -> None:
        goal = self.reads + count

        async def enough() -> bool:
            return self.reads >= goal

        await eventually(enough, what=f"{count} clock reads")

    async def advance(self, seconds: float) -> None:
        """Move on (past the alerts' check interval), and let the dispatchers turn."""
        self.moment += timedelta(seconds=seconds)
        await self.turns(20)


def alert_settings(database_url: str, smtp: MailServer, receiver: Receiver) -> Settings:
    return make_settings(
        database_url,
        **smtp_settings(smtp),
        webhook_urls=f"http://127.0.0.1:{receiver.port}/hook",
        webhook_secret=WEBHOOK_SECRET,
        dispatcher="worker",  # only the test's dispatchers deliver, on the test's clock
        public_url="https://leads.clinic.example",
        alert_after_minutes=15,
    )


@contextlib.asynccontextmanager
async def dispatchers(settings: Settings, now: Now, count: int = 2) -> AsyncIterator[None]:
    """``count`` dispatchers, each with its own engine, as separate servers have."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient())
        forms = load_forms(settings.forms_file)
        for _ in range(count):
            database = Database.from_settings(settings)
            stack.push_async_callback(database.close)
            dispatcher = Dispatcher(settings, database, forms, http, poll_seconds=0.02, clock=now)
            dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
        yield


def alerts(server: MailServer) -> list[Received]:
    with server.lock:
        return [m for m in server.received if str(m.message["Subject"]) == SUBJECT]


async def alert_count(server: MailServer, count: int) -> list[Received]:
    async def enough() -> list[Received] | None:
        found = alerts(server)
        return found if len(found) >= count else None

    return await eventually(enough, what=f"{count} alert email(s)")


async def submit(client: httpx.AsyncClient, lead: Callable[..., dict[str, Any]]) -> None:
    body = lead(name="Private Person", message=f"{SECRET_WORDS}: my hip", phone="2025550143")
    answer = await client.post("/api/leads", json=body)
    assert answer.status_code == 201, answer.text


async def dead_letters(query: Query, count: int) -> None:
    async def enough() -> bool:
        rows = await query("SELECT status FROM outbox WHERE status = 'dead'")
        return len(rows) >= count

    await eventually(enough, what=f"{count} dead letter(s)")


def add_admin(database_url: str) -> None:
    done = leads_cli(
        database_url, "user", "add", ADMIN, "--role", "admin", stdin="a long password 1234\n"
    )
    assert done.returncode == 0, done.stderr


# -- the tests -------------------------------------------------------------------------------


async def test_a_dead_webhook_alerts_the_admins_by_email_once_per_incident(
    database_url: str, lead: Callable[..., dict[str, Any]], query: Query, receiver: Receiver
) -> None:
    receiver.script = [400]  # a permanent refusal: a dead letter at once
    with mail_server() as smtp:
        settings = alert_settings(database_url, smtp, receiver)
        async with serving_app(settings) as client:
            await asyncio.to_thread(add_admin, database_url)
            await submit(client, lead)
            now = Now(utcnow())
            async with dispatchers(settings, now):
                await dead_letters(query, 1)
                await now.advance(31)
                [alert] = await alert_count(smtp, 1)
                assert alert.recipients == [ADMIN]
                text = alert.part("plain")
                assert "1 is a dead letter" in text
                assert "Failing: webhook." in text
                assert "https://leads.clinic.example/staff/deliveries" in text
                for private in ("Private", SECRET_WORDS, "2025550143", "example.com"):
                    assert private not in alert.raw.decode(errors="replace")
                assert receiver.alerts() == []  # the failing channel is not asked

                # A second dead letter in the same incident: nothing more.
                receiver.script = [400]
                await submit(client, lead)
                await dead_letters(query, 2)
                await now.advance(31)
                await now.advance(31)
                assert len(alerts(smtp)) == 1

                # Both sent again, and delivered: the incident closes.
                retried = await asyncio.to_thread(
                    leads_cli, database_url, "outbox", "retry", "--all-dead"
                )
                assert retried.returncode == 0, retried.stderr

                async def closed() -> bool:
                    await now.advance(31)
                    rows = await query("SELECT closed_at FROM delivery_incidents")
                    return len(rows) == 1 and rows[0]["closed_at"] is not None

                await eventually(closed, what="the incident closing")
                assert len(alerts(smtp)) == 1

                # A new dead letter opens a new incident, which alerts again.
                receiver.script = [400]
                await submit(client, lead)
                await dead_letters(query, 1)
                await now.advance(31)
                second = (await alert_count(smtp, 2))[1]
                assert "1 is a dead letter" in second.part("plain")
    numbers = await query("SELECT number, dead FROM delivery_incidents ORDER BY number")
    assert [row["number"] for row in numbers] == [1, 2]


async def test_a_notification_waiting_too_long_alerts_the_inbox_when_there_is_no_admin(
    database_url: str, lead: Callable[..., dict[str, Any]], query: Query, receiver: Receiver
) -> None:
    receiver.script = [503] * 500  # the webhook is down: retried, never delivered
    with mail_server() as smtp:
        settings = alert_settings(database_url, smtp, receiver)
        async with serving_app(settings) as client:
            await submit(client, lead)
            now = Now(utcnow())  # from here on, the dispatchers' time is the test's
            async with dispatchers(settings, now):
                await now.advance(14 * 60)  # waiting, but not long enough yet
                await now.advance(31)
                assert alerts(smtp) == []
                await now.advance(2 * 60)
                [alert] = await alert_count(smtp, 1)
    assert sorted(alert.recipients) == sorted(INBOX.split(","))
    text = alert.part("plain")
    assert "1 has waited more than 15 minutes" in text
    assert "Failing: webhook." in text
    [row] = await query("SELECT dead, waiting, channels FROM delivery_incidents")
    assert (row["dead"], row["waiting"], row["channels"]) == (0, 1, "webhook")


async def test_dead_email_alerts_through_the_webhook_signed(
    database_url: str, lead: Callable[..., dict[str, Any]], query: Query, receiver: Receiver
) -> None:
    with mail_server() as smtp:
        smtp.script = ["550 5.1.1 no such mailbox"]
        settings = alert_settings(database_url, smtp, receiver)
        async with serving_app(settings) as client:
            await submit(client, lead)
            now = Now(utcnow())  # from here on, the dispatchers' time is the test's
            async with dispatchers(settings, now):
                await dead_letters(query, 1)
                await now.advance(31)

                async def alerted() -> list[dict[str, Any]] | None:
                    return receiver.alerts() or None

                [payload] = await eventually(alerted, what="the webhook alert")
                await now.advance(31)
                assert len(receiver.alerts()) == 1
    data = payload["data"]
    assert (data["incident"], data["dead"], data["waiting"]) == (1, 1, 0)
    assert data["channels"] == ["smtp"]
    assert data["url"] == "https://leads.clinic.example/staff/deliveries"
    assert SECRET_WORDS not in json.dumps(payload)
    assert alerts(smtp) == []
