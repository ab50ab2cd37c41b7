"""Peers that hang or misbehave: an SMTP server that never answers, one that hangs up after
DATA, a webhook receiver that answers after a minute, one that resets connections, an email
API answering 500 and then 429 with Retry-After. Each attempt is cut off at
LEADS_DELIVERY_TIMEOUT_SECONDS and retried on RetryPolicy's schedule (checked against a
dispatcher clock the test moves), and a healthy webhook receiver alongside gets its
notification at once. How intake and the staff pages fare meanwhile is measured against a
real `leads serve` in test_faults_peers_latency.py."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from leads.core.forms import load_forms
from leads.notify.dispatcher import CONCURRENCY, Dispatcher
from leads.storage.database import Database
from leads.storage.types import utcnow
from tests.conftest import Query, make_settings, serving_app
from tests.faults.peers import Peer, running_peer
from tests.support import eventually

Row = dict[str, Any]
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"f" * 32).decode()
TIMEOUT = 1.0  # LEADS_DELIVERY_TIMEOUT_SECONDS here
BASE = 30.0  # LEADS_RETRY_BASE_SECONDS: the first retry within 30 s, the second within 60 s


class MovedClock:
    """The dispatcher's clock: stands still until the test sets it."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def stored(value: Any) -> datetime:
    """A timestamp as the query fixture reads it (text on SQLite, datetime on PostgreSQL)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Rig:
    client: httpx.AsyncClient
    dispatcher: Dispatcher
    clock: MovedClock
    query: Query

    async def submit(self) -> None:
        body = {"name": "Ada Lovelace", "email": f"ada.{uuid.uuid4().hex[:8]}@example.com"}
        answer = await self.client.post("/api/leads", json={**body, "consent": True})
        assert answer.status_code == 201, answer.text

    def run_at(self, when: datetime) -> None:
        """Move the dispatcher's clock to ``when`` and have it look at the outbox."""
        self.clock.now = when
        self.dispatcher.wake()

    async def row(self, where: str, until: Callable[[Row], bool], what: str) -> Row:
        """The outbox row ``where`` picks, once ``until`` holds for it."""

        async def probe() -> Row | None:
            rows = await self.query(f"SELECT * FROM outbox WHERE {where}")  # noqa: S608
            return next((row for row in rows if until(row)), None)

        return await eventually(probe, what=what, within=20, every=0.01)


@contextlib.asynccontextmanager
async def rig(
    database_url: str, query: Query, transport: httpx.AsyncBaseTransport | None = None, **kw: Any
) -> AsyncIterator[Rig]:
    """The app (its own dispatcher off) and a dispatcher on a clock the test moves, sending
    through the real channels these settings configure."""
    settings = make_settings(
        database_url,
        dispatcher="worker",
        delivery_timeout_seconds=TIMEOUT,
        retry_base_seconds=BASE,
        **kw,
    )
    clock = MovedClock()
    async with (
        serving_app(settings) as client,
        httpx.AsyncClient(timeout=TIMEOUT, transport=transport) as http,
    ):
        database = Database.from_settings(settings)
        dispatcher = Dispatcher(settings, database, load_forms(None), http, clock=clock)
        dispatcher.start()
        try:
            yield Rig(client, dispatcher, clock, query)
        finally:
            await dispatcher.stop()
            await database.close()


@contextlib.contextmanager
def bad_and_healthy(case: str) -> Iterator[tuple[Peer, Peer, dict[str, Any]]]:
    """The misbehaving peer, a healthy webhook receiver, and the settings for both."""
    behaviour = {
        "smtp_never_answers": "silent",
        "smtp_drops_after_data": "smtp_drop_after_data",
        "webhook_answers_after_60s": "http_slow",
        "webhook_resets": "http_reset",
    }[case]
    with running_peer(behaviour, delay=60) as bad, running_peer("http_ok") as healthy:
        if case.startswith("smtp"):
            settings: dict[str, Any] = {
                "smtp_url": f"smtp://127.0.0.1:{bad.port}?starttls=off",
                "inbox": "desk@clinic.example",
                "webhook_urls": healthy.url,
            }
        else:
            settings = {"webhook_urls": f"{bad.url},{healthy.url}"}
        yield bad, healthy, {**settings, "webhook_secret": WEBHOOK_SECRET}


HANGS = {"smtp_never_answers", "webhook_answers_after_60s"}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(["webhook_resets", "smtp_drops_after_data", *HANGS]))
async def test_a_misbehaving_peer_is_cut_off_and_retried_on_schedule(
    case: str, database_url: str, query: Query, record_property: Any
) -> None:
    with bad_and_healthy(case) as (bad, healthy, settings):
        async with rig(database_url, query, **settings) as r:
            await r.submit()
            started = time.monotonic()
            r.run_at(utcnow())
            bad_row = f"NOT (channel = 'webhook' AND target = '{healthy.url}')"
            healthy_row = f"channel = 'webhook' AND target = '{healthy.url}'"

            # The healthy receiver is not held up by the peer that misbehaves.
            delivered = await r.row(
                healthy_row, lambda row: row["status"] == "delivered", "the healthy webhook"
            )
            healthy_after = time.monotonic() - started
            if case in HANGS:
                (still,) = await query(f"SELECT * FROM outbox WHERE {bad_row}")  # noqa: S608
                assert (still["status"], still["last_error"]) == ("pending", None)
            assert delivered["attempts"] == 1

            # The first attempt is cut off (at the timeout, for a peer that hangs) ...
            first = await r.row(
                bad_row,
                lambda row: row["attempts"] == 1 and row["last_error"] is not None,
                "failure",
            )
            cut_after = time.monotonic() - started
            if case in HANGS:
                assert TIMEOUT * 0.9 <= cut_after <= TIMEOUT + 2, cut_after
            else:
                assert cut_after < TIMEOUT, cut_after
            # ... and retried within the first step of the schedule: uniform(0, base).
            assert first["status"] == "pending"
            wait = (stored(first["next_attempt_at"]) - r.clock.now).total_seconds()
            assert 0 <= wait <= BASE, wait

            r.run_at(stored(first["next_attempt_at"]))
            second = await r.row(
                bad_row,
                lambda row: row["attempts"] == 2 and row["claimed_by"] is None,
                "the second attempt's outcome",
            )
            wait = (stored(second["next_attempt_at"]) - r.clock.now).total_seconds()
            assert 0 <= wait <= 2 * BASE, wait
            assert second["status"] == "pending"

    assert len(bad.connections) == 2, bad.connections  # one connection per attempt
    assert healthy.count() == 1  # delivered once, never resent
    record_property(
        "measured",
        f"{case}: attempt cut off after {cut_after:.2f} s (timeout {TIMEOUT:.0f} s, "
        f"error {first['last_error']!r}); healthy webhook delivered after {healthy_after:.3f} s",
    )


def postmark(status: int, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.slow
async def test_an_email_api_answering_500_then_429_is_retried_as_retry_after_says(
    database_url: str, query: Query, record_property: Any
) -> None:
    """Postmark's documented answers: 500 (its fault), 429 with Retry-After (too many
    requests), then 200 with ErrorCode 0. The 429's Retry-After is longer than the schedule's
    step, so the next attempt is exactly that far off."""
    answers = iter(
        [
            postmark(500, {"ErrorCode": 0, "Message": "Internal Server Error"}),
            postmark(
                429, {"ErrorCode": 0, "Message": "Rate limit exceeded"}, **{"Retry-After": "120"}
            ),
            postmark(200, {"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4())}),
        ]
    )
    asked: list[httpx.Request] = []

    def provider(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return next(answers)

    settings = {
        "email_api": "postmark",
        "email_api_key": "server-token",
        "inbox": "desk@clinic.example",
    }
    async with rig(database_url, query, httpx.MockTransport(provider), **settings) as r:
        await r.submit()
        r.run_at(utcnow())
        first = await r.row(
            "true", lambda row: row["attempts"] == 1 and row["claimed_by"] is None, "the 500"
        )
        assert first["last_error"] == "postmark: HTTP 500"
        wait = (stored(first["next_attempt_at"]) - r.clock.now).total_seconds()
        assert 0 <= wait <= BASE, wait

        r.run_at(stored(first["next_attempt_at"]))
        second = await r.row(
            "true", lambda row: row["attempts"] == 2 and row["claimed_by"] is None, "the 429"
        )
        assert second["last_error"] == "postmark: HTTP 429"
        retry_after = stored(second["next_attempt_at"]) - r.clock.now
        assert retry_after == timedelta(seconds=120), retry_after  # > 2 x base's ceiling

        r.run_at(stored(second["next_attempt_at"]))
        third = await r.row("true", lambda row: row["status"] == "delivered", "the delivery")
    assert third["attempts"] == 3
    assert len(asked) == 3
    assert len({json.loads(a.content)["Headers"][0]["Value"] for a in asked}) == 1  # one Message-ID
    record_property(
        "measured",
        f"postmark 500 -> retry in {wait:.1f} s (<= {BASE:.0f}); 429 Retry-After: 120 -> "
        f"retry in {retry_after.total_seconds():.0f} s; delivered on attempt 3",
    )


BURST = 24  # leads: three times the dispatcher's slots for one route
ON_TIME = 2.0  # seconds from a lead's 201 to its webhook: generous for a busy machine


@pytest.mark.slow
async def test_an_smtp_server_that_never_answers_holds_up_no_webhook(
    database_url: str, record_property: Any
) -> None:
    """Every SMTP attempt hangs until its 10 s timeout; the SMTP route's slots fill, and
    the webhooks of a burst still arrive at once, each exactly once."""
    with running_peer("silent") as smtp, running_peer("http_ok") as healthy:
        settings = make_settings(
            database_url,
            smtp_url=f"smtp://127.0.0.1:{smtp.port}?starttls=off",
            inbox="desk@clinic.example",
            webhook_urls=healthy.url,
            webhook_secret=WEBHOOK_SECRET,
            delivery_timeout_seconds=10,
            shutdown_grace_seconds=0.1,
        )
        async with serving_app(settings) as client:

            async def one(i: int) -> tuple[str, float]:
                body = {"name": "Ada", "email": f"p{i}@example.com", "consent": True}
                answer = await client.post("/api/leads", json=body)
                assert answer.status_code == 201, answer.text
                return answer.json()["id"], time.monotonic()

            answered = dict(await asyncio.gather(*(one(i) for i in range(BURST))))

            async def all_arrived() -> bool:
                return healthy.count() >= BURST

            await eventually(all_arrived, what="every webhook", within=30)
        with healthy.lock:
            arrivals = list(healthy.arrivals)
        smtp_connections = len(smtp.connections)
    ids = collections.Counter(a.header("webhook-id") for a in arrivals)
    assert len(ids) == BURST, ids
    assert set(ids.values()) == {1}, ids  # none delivered twice
    receipts = [json.loads(arrival.body)["data"]["enquiry_id"] for arrival in arrivals]
    late = {r: a.at - answered[r] for r, a in zip(receipts, arrivals, strict=True)}
    assert set(late) == set(answered)
    assert max(late.values()) <= ON_TIME, sorted(late.values())
    assert smtp_connections <= CONCURRENCY  # the stalled route held its own slots only
    record_property(
        "measured",
        f"SMTP never answers: {BURST} webhooks, the latest {max(late.values()):.3f} s after "
        f"its lead's 201; {smtp_connections} SMTP connections left hanging",
    )
