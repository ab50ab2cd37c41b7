"""Alerts when notifications stall, through a real SMTP server, a real webhook receiver and
dispatchers on a clock the test moves: told once per incident, through the channels that
still work, to the admins (or the inbox when there are none), with counts and a link only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from leads.settings import Settings
from leads.storage.types import utcnow
from tests.conftest import Query, make_settings, serving_app
from tests.mail import INBOX, MailServer, Received, mail_server, smtp_settings
from tests.receivers import Receiver, webhook_receiver
from tests.support import TurnClock, dispatchers, eventually, leads_cli

SUBJECT = "leads: notifications are not getting through"
SECRET_WORDS = "ALERT-PRIVATE-HIP-STORY"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
ADMIN = "boss@clinic.example"


# -- a real webhook receiver -----------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


def webhook_alerts(receiver: Receiver) -> list[dict[str, Any]]:
    """The alerts posted to the receiver, each signature checked."""
    found = [d.payload(WEBHOOK_SECRET) for d in receiver.everything()]
    return [payload for payload in found if payload["type"] == "alert.delivery_stalled"]


# -- helpers ---------------------------------------------------------------------------------


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
    receiver.script = {"/hook": [400]}  # a permanent refusal: a dead letter at once
    with mail_server() as smtp:
        settings = alert_settings(database_url, smtp, receiver)
        async with serving_app(settings) as client:
            await asyncio.to_thread(add_admin, database_url)
            await submit(client, lead)
            now = TurnClock(utcnow())
            async with dispatchers(settings, now, 2):
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
                assert webhook_alerts(receiver) == []  # the failing channel is not asked

                # A second dead letter in the same incident: nothing more.
                receiver.script = {"/hook": [400]}
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
                receiver.script = {"/hook": [400]}
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
    receiver.script = {"/hook": [503] * 500}  # the webhook is down: retried, never delivered
    with mail_server() as smtp:
        settings = alert_settings(database_url, smtp, receiver)
        async with serving_app(settings) as client:
            await submit(client, lead)
            now = TurnClock(utcnow())  # from here on, the dispatchers' time is the test's
            async with dispatchers(settings, now, 2):
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
            now = TurnClock(utcnow())  # from here on, the dispatchers' time is the test's
            async with dispatchers(settings, now, 2):
                await dead_letters(query, 1)
                await now.advance(31)

                async def alerted() -> list[dict[str, Any]] | None:
                    return webhook_alerts(receiver) or None

                [payload] = await eventually(alerted, what="the webhook alert")
                await now.advance(31)
                assert len(webhook_alerts(receiver)) == 1
    data = payload["data"]
    assert (data["incident"], data["dead"], data["waiting"]) == (1, 1, 0)
    assert data["channels"] == ["smtp"]
    assert data["url"] == "https://leads.clinic.example/staff/deliveries"
    assert SECRET_WORDS not in json.dumps(payload)
    assert alerts(smtp) == []
