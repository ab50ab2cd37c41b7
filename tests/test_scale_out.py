"""Scale-out on real servers: two `leads serve` and two `leads worker` processes on one
PostgreSQL, counting rate limits in one Redis, sending the clinic's email to a real SMTP
server. Every submission is answered 201, stored once and announced once; a worker killed
mid-run loses nothing, and repeats only what it had claimed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import SECRET, make_settings, migrate
from tests.mail import MailServer, mail_server
from tests.servers import Service, free_port, leads_process, redis_server
from tests.support import eventually

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

SUBMISSIONS = 2000
IN_FLIGHT = 32  # httpx's pool slows down badly with hundreds of requests waiting in it
DELIVERY_TIMEOUT = 3  # a dead worker's leases run out after 2 x 3 + 1 = 7 s
LEASE_SECONDS = 2 * DELIVERY_TIMEOUT + 1
INBOX = "desk@clinic.example"


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (the four `leads`): what the
    test costs whatever else the machine is doing."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cost(began: float, cpu_before: float) -> str:
    return (
        f"whole test {time.monotonic() - began:.1f} s, "
        f"{cpu_seconds() - cpu_before:.1f} s of CPU (this process and the four leads)"
    )


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server(free_port()) as url:
        yield url


@dataclass
class Deployment:
    servers: list[Service]
    workers: list[Service]
    smtp: MailServer
    database_url: str

    async def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    """Four processes as an operator runs them, started at once on a migrated database."""
    await migrate(make_settings(database_url))  # `leads worker` does not migrate
    env = {
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_DISPATCHER": "worker",
        "LEADS_RATE_LIMIT": "1/hour",  # one per address and per email, counted in Redis
        "LEADS_RATE_LIMIT_STORAGE": redis_url,
        "LEADS_TRUSTED_PROXIES": "127.0.0.1",  # each submission names its own address
        "LEADS_TARPIT_SECONDS": "0",
        "LEADS_INBOX": INBOX,
        "LEADS_RETRY_BASE_SECONDS": "0.05",
        "LEADS_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT),
        "LEADS_LOG_LEVEL": "warning",
    }
    with mail_server() as smtp, contextlib.ExitStack() as stack:
        env["LEADS_SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}?starttls=off"
        servers = [stack.enter_context(leads_process(env, ready=False)) for _ in range(2)]
        workers = [stack.enter_context(leads_process(env, "worker", ready=False)) for _ in range(2)]
        try:
            # Four interpreters importing at once on a small machine: give them time.
            for server in servers:
                await eventually(
                    lambda s=server: answers(s), within=90, what=f"{server.url} to answer"
                )
            for worker in workers:  # it has its signal handlers once it says this
                await eventually(lambda w=worker: started(w), within=90, what="a worker's start")
            yield Deployment(servers, workers, smtp, database_url)
        except BaseException:
            for process in (*servers, *workers):  # what each said, for the failure report
                print(f"--- {' '.join(map(str, process.process.args))}\n{process.output()[-3000:]}")
            raise


async def answers(server: Service) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"leads serve exited:\n{server.output()}")
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{server.url}/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def started(worker: Service) -> bool:
    if worker.process.poll() is not None:
        raise AssertionError(f"leads worker exited:\n{worker.output()}")
    return "delivering notifications" in worker.output()


def address(tag: str, n: int) -> str:
    """Visitor n's address, in a block of 4,096 of this test's own: Redis keeps the counts
    of earlier tests in the run (an hour's window), so no two tests may share addresses."""
    n += (int(tag, 16) % 4000) * 4096
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def email_of(tag: str, n: int) -> str:
    return f"visitor{n}.{tag}@example.com"


async def submit_all(servers: list[Service], tag: str) -> list[httpx.Response]:
    """SUBMISSIONS leads, every other one to each server, each from its own address."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    # Idle connections are dropped well before uvicorn's own 5 s keep-alive closes them, so
    # that no request goes out on a connection the server is closing at that moment.
    limits = httpx.Limits(
        max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT, keepalive_expiry=2
    )
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=s.url, timeout=60, limits=limits)
            )
            for s in servers
        ]

        async def submit(n: int) -> httpx.Response:
            body = {"name": f"Visitor {n}", "email": email_of(tag, n), "consent": True}
            async with gate:
                return await clients[n % 2].post(
                    "/api/leads", json=body, headers={"X-Forwarded-For": address(tag, n)}
                )

        return await asyncio.gather(*(submit(n) for n in range(SUBMISSIONS)))


def receipts_of(responses: list[httpx.Response]) -> set[uuid.UUID]:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: SUBMISSIONS}, statuses
    return {uuid.UUID(r.json()["id"]) for r in responses}


async def all_delivered(deployment: Deployment) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record] | None:
        rows = await deployment.sql("SELECT status, count(*) AS n FROM outbox GROUP BY status")
        return rows if {r["status"]: r["n"] for r in rows} == {"delivered": SUBMISSIONS} else None

    return await eventually(probe, within=120, every=0.2, what="every notification delivered")


async def stop_workers(deployment: Deployment) -> None:
    """SIGTERM: a stopping worker finishes or hands back what it has in flight, so once
    they have exited every email that will ever arrive has arrived."""
    for worker in deployment.workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    for worker in deployment.workers:
        await asyncio.to_thread(worker.process.wait, 30)


async def assert_stored_once_and_announced(
    deployment: Deployment, receipts: set[uuid.UUID]
) -> Counter[uuid.UUID]:
    """Every acknowledged lead is stored, with one notification, delivered; gives how many
    times each notification reached the inbox."""
    leads = await deployment.sql("SELECT id, receipt_id, spam FROM leads")
    assert {row["receipt_id"] for row in leads} == receipts
    assert not any(row["spam"] for row in leads)
    outbox = await deployment.sql("SELECT id, lead_id, kind, status FROM outbox")
    assert sorted(row["lead_id"] for row in outbox) == sorted(row["id"] for row in leads)
    assert {(row["kind"], row["status"]) for row in outbox} == {("lead.created", "delivered")}
    arrived: Counter[uuid.UUID] = Counter()
    for mail in deployment.smtp.received:
        assert mail.recipients == [INBOX]
        found = re.fullmatch(r"<([0-9a-f-]{36})@[^>]+>", str(mail.message["Message-ID"]))
        assert found, mail.message["Message-ID"]
        arrived[uuid.UUID(found[1])] += 1
    assert set(arrived) == {row["id"] for row in outbox}, "a notification never arrived"
    return arrived


async def test_two_servers_two_workers_store_and_announce_every_lead_once(
    postgres_url: str, redis_url: str, record_property: Any
) -> None:
    began, cpu_before = time.monotonic(), cpu_seconds()
    tag = uuid.uuid4().hex[:8]
    async with deployment(postgres_url, redis_url) as running:
        submitting = time.monotonic()
        receipts = receipts_of(await submit_all(running.servers, tag))
        submitted = time.monotonic() - submitting
        await all_delivered(running)
        delivered = time.monotonic() - submitting

        # The limits are counted together: an email each server has just seen once is
        # refused by the other one, though it comes from an address neither has seen.
        async with httpx.AsyncClient(timeout=30) as client:
            for n, server in (
                (SUBMISSIONS - 1, running.servers[0]),
                (SUBMISSIONS - 2, running.servers[1]),
            ):
                again = await client.post(
                    f"{server.url}/api/leads",
                    json={"name": "Again", "email": email_of(tag, n), "consent": True},
                    headers={"X-Forwarded-For": address(tag, SUBMISSIONS + n)},
                )
                assert again.status_code == 429, again.text
        await stop_workers(running)
        arrived = await assert_stored_once_and_announced(running, receipts)
    assert sum(arrived.values()) == SUBMISSIONS  # nobody was killed: no repeats at all
    record_property(
        "measured",
        f"{SUBMISSIONS} leads over 2 servers in {submitted:.1f} s, all emailed after "
        f"{delivered:.1f} s; {cost(began, cpu_before)}",
    )


async def test_a_worker_killed_halfway_loses_nothing_and_repeats_only_its_claims(
    postgres_url: str, redis_url: str, record_property: Any
) -> None:
    began, cpu_before = time.monotonic(), cpu_seconds()
    tag = uuid.uuid4().hex[:8]
    async with deployment(postgres_url, redis_url) as running:
        victim = running.workers[0].process
        killed = threading.Event()
        killed_at: list[float] = []
        seen = 0

        def kill_halfway() -> None:  # in the SMTP server's thread, as a message arrives
            nonlocal seen
            seen += 1
            if seen == SUBMISSIONS // 2:
                os.kill(victim.pid, signal.SIGKILL)
                killed_at.append(time.monotonic())
                killed.set()

        running.smtp.on_data = kill_halfway
        submitting = asyncio.create_task(submit_all(running.servers, tag))
        arrived_in_time = await asyncio.to_thread(killed.wait, 120)
        if not arrived_in_time and submitting.done():
            submitting.result()  # the submissions failed: that is the cause to report
        assert arrived_in_time, f"only {seen} of {SUBMISSIONS // 2} emails arrived in 120 s"
        # Its claims stay its own until their leases run out: read them before that.
        claimed = await running.sql(
            "SELECT count(*) AS n FROM outbox WHERE status = 'pending' AND claimed_by LIKE $1",
            f"%:{victim.pid}:%",
        )
        read_within = time.monotonic() - killed_at[0]
        assert read_within < LEASE_SECONDS, "read the dead worker's claims too late to count"
        in_flight = claimed[0]["n"]
        assert await asyncio.to_thread(victim.wait, 10) == -signal.SIGKILL

        receipts = receipts_of(await submitting)
        await all_delivered(running)
        await stop_workers(running)
        arrived = await assert_stored_once_and_announced(running, receipts)
    repeats = sum(arrived.values()) - len(arrived)
    assert repeats <= in_flight
    assert all(count <= 2 for count in arrived.values())
    record_property(
        "measured",
        f"worker killed after {SUBMISSIONS // 2} emails holding {in_flight} claim(s): "
        f"{repeats} email(s) sent twice, none lost; {cost(began, cpu_before)}",
    )
