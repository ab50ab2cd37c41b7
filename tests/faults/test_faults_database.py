"""The database lost and back: a PostgreSQL of the test's own, stopped (``immediate``: as if
it had died; ``fast``: every session ended) while a real `leads serve` takes a steady load
of submissions, then started again.

While it is down every submission is answered 503 problem+json (never a 201 without a
commit), /readyz says 503, and a signed-in member of staff gets a 503 page saying the
database is unavailable. Once it is back the same process recovers by itself: every
acknowledged lead is stored and every one of them reaches the clinic's inbox."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape

import asyncpg
import httpx
import pytest

from tests import pgcluster
from tests.conftest import SECRET, make_settings, migrate
from tests.mail import mail_server
from tests.servers import leads_process, unavailable
from tests.support import eventually, run_leads

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

INBOX = "desk@clinic.example"
STAFF, PASSWORD = "front@clinic.example", "correct horse battery"
IN_FLIGHT = 8
OUTAGE_SECONDS = 3.0  # long enough for every in-flight and pooled connection to fail


@pytest.fixture
def cluster() -> Iterator[pgcluster.Cluster]:
    bindir = pgcluster.postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL")
        raise AssertionError("unreachable")
    with pgcluster.stoppable_cluster(bindir, fsync=False) as running:
        yield running


@dataclass
class Load:
    """Submissions sent one after another by IN_FLIGHT visitors, every answer kept."""

    client: httpx.AsyncClient
    answers: list[tuple[float, httpx.Response]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def visitor(self, n: int) -> None:
        sent = 0
        while not self.stopping.is_set():
            sent += 1
            body = {"name": "Visitor", "email": f"v{n}.{sent}@example.com", "consent": True}
            with contextlib.suppress(httpx.TransportError):
                answer = await self.client.post("/api/leads", json=body)
                self.answers.append((time.monotonic(), answer))

    def since(self, moment: float) -> list[httpx.Response]:
        return [answer for at, answer in self.answers if at >= moment]

    async def answered(self, count: int, *, since: float = 0.0) -> bool:
        return len(self.since(since)) >= count

    async def first_201(self, *, since: float) -> float | None:
        return next((at for at, a in self.answers if at > since and a.status_code == 201), None)


def field_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return unescape(found.group(1))


async def sign_in(client: httpx.AsyncClient) -> None:
    page = await client.get("/staff/login")
    data = {"login_token": field_value(page.text, "login_token"), "email": STAFF}
    answer = await client.post("/staff/login", data={**data, "password": PASSWORD})
    assert answer.status_code == 303, answer.text


async def ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


@pytest.mark.parametrize("mode", ["immediate", "fast"])
async def test_postgresql_stopped_and_started_again_under_load(
    cluster: pgcluster.Cluster, mode: str, record_property: pytest.RecordProperty
) -> None:
    conn = await asyncpg.connect(f"{cluster.url}/postgres")
    await conn.execute("CREATE DATABASE leads")
    await conn.close()
    database_url = f"{cluster.url}/leads"
    await migrate(make_settings(database_url))
    env = {
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",
        "LEADS_TARPIT_SECONDS": "0",
        "LEADS_INBOX": INBOX,
        "LEADS_RETRY_BASE_SECONDS": "0.05",
        "LEADS_DATABASE_TIMEOUT_SECONDS": "2",
        "LEADS_LOG_LEVEL": "warning",
    }
    added = run_leads("user", "add", STAFF, env=env, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.returncode == 0, added.stderr
    with mail_server() as smtp:
        env["LEADS_SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}?starttls=off"
        with leads_process(env) as service:
            async with (
                httpx.AsyncClient(base_url=service.url, timeout=30) as client,
                httpx.AsyncClient(base_url=service.url, timeout=30) as staff,
            ):
                await sign_in(staff)
                listing = await staff.get("/staff", headers={"Accept": "text/html"})
                csrf = field_value(listing.text, "csrf_token")
                load = Load(client)
                visitors = [asyncio.create_task(load.visitor(n)) for n in range(IN_FLIGHT)]
                try:
                    await eventually(lambda: load.answered(50), what="50 answers")
                    stopped = time.monotonic()
                    cluster.stop(mode)
                    await asyncio.sleep(OUTAGE_SECONDS)  # the load runs on meanwhile
                    down = await client.get("/readyz")
                    page = await staff.get("/staff", headers={"Accept": "text/html"})
                    sign_out = await staff.post(
                        "/staff/logout", data={"csrf_token": csrf}, headers={"Accept": "text/html"}
                    )
                    during = load.since(time.monotonic() - 1)
                    started = time.monotonic()
                    cluster.start()
                    await eventually(lambda: ready(client), within=60, what="/readyz 200")
                    back = time.monotonic()
                    first_201 = await eventually(
                        lambda: load.first_201(since=back), within=60, what="a 201 after it"
                    )
                    await eventually(
                        lambda: load.answered(50, since=first_201), what="50 more answers"
                    )
                finally:
                    load.stopping.set()
                    await asyncio.gather(*visitors)
                staff_after = await staff.get("/staff", headers={"Accept": "text/html"})

            assert down.status_code == 503, down.text
            assert page.status_code == 503, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert "The database is unavailable" in page.text
            assert "Try again" in page.text
            assert sign_out.status_code == 503, sign_out.text
            assert "may not have been saved" in sign_out.text
            assert staff_after.status_code == 200  # the same session: the sign-out never was
            assert during, "no answer at all while the database was down"
            for answer in during:
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["code"] == "storage_unavailable"
            statuses = [a.status_code for _, a in load.answers]
            assert set(statuses) <= {201, 503}, sorted(set(statuses))
            receipts = {uuid.UUID(a.json()["id"]) for _, a in load.answers if a.status_code == 201}

            conn = await asyncpg.connect(database_url)
            try:
                rows = await conn.fetch("SELECT id, receipt_id FROM leads")
                stored = {row["receipt_id"] for row in rows}
                assert receipts <= stored, f"{len(receipts - stored)} acknowledged leads lost"

                async def all_delivered() -> bool:
                    pending = await conn.fetchval(
                        "SELECT count(*) FROM outbox WHERE status <> 'delivered'"
                    )
                    return pending == 0

                await eventually(all_delivered, within=60, every=0.2, what="every delivery")
                total = await conn.fetchval("SELECT count(*) FROM outbox")
            finally:
                await conn.close()
            # Every stored lead (a 503 whose commit landed is stored too) reached the inbox.
            smtp.wait_for(len(stored))
            assert total == len(stored)
            assert service.process.poll() is None, service.output()

    record_property(
        "measured",
        f"pg_ctl stop -m {mode}: {statuses.count(201)} answered 201, "
        f"{statuses.count(503)} answered 503, "
        f"{len(stored)} stored, {total} delivered; "
        f"/readyz back {back - started:.1f} s after PostgreSQL was started, "
        f"first 201 {first_201 - started:.1f} s after; outage {started - stopped:.1f} s",
    )
