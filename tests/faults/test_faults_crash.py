"""Crashes at random moments: `leads serve` and `leads worker` (LEADS_DISPATCHER=worker)
killed with SIGKILL in the middle of a mixed load (visitors posting leads, the worker
emailing a real SMTP server, staff changing statuses and writing notes through the API with
a write token), round after round, on SQLite and PostgreSQL, restarting what was killed.

What was acknowledged survives every crash: each 201's receipt is stored, each 2xx staff
change is on the lead and its timeline, every lead's clinic email reaches the inbox (some
twice: a worker killed between the server's "250" and its own record sends it again; those
repeats are counted and reported), and on SQLite `PRAGMA integrity_check` is ok after each
crash. The kill moments are random (the seed is reported, and CRASH_TEST_SEED replays one):
the server dies on its K-th answer of the round with other requests in flight, the worker
on its K-th email, while the SMTP server holds the message it has just been sent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, Query, make_settings, migrate
from tests.mail import MailServer, mail_server
from tests.servers import Service, free_port, leads_process
from tests.support import eventually, leads_cli

pytestmark = pytest.mark.slow

QUICK_ROUNDS = 2  # both killed, then the server alone
LONG_ROUNDS = 20
INBOX = "desk@clinic.example"
DELIVERY_TIMEOUT = 1  # a killed worker's leases run out after 2 x 1 + 1 = 3 s
VISITORS = 3  # visitors posting at once
STAFF = 2  # staff clients changing leads at once
# In turn; in a round that kills both the worker goes first: it needs the server's leads.
VICTIMS = (("worker", "server"), ("server",), ("worker",))
STATUSES = ("contacted", "booked", "unreachable", "not_interested")


@dataclass
class Ledger:
    """What the service acknowledged, and what it was asked without an answer."""

    receipts: set[uuid.UUID] = field(default_factory=set)
    unchanged: list[str] = field(default_factory=list)  # acknowledged leads' emails
    statuses: dict[str, str] = field(default_factory=dict)  # lead id -> status given a 200
    notes: dict[str, list[str]] = field(default_factory=dict)  # lead id -> notes given a 201
    answers: Counter[int] = field(default_factory=Counter)
    unanswered: int = 0  # requests a crash cut off: none of them was acknowledged


@dataclass
class Crash:
    """One round's plan: who dies, on which answer of the server and which email."""

    victims: tuple[str, ...]
    server_on: int  # the server's K-th answer of the round
    worker_on: int  # the worker's K-th email of the round


class Deployment:
    """`leads serve` (always on one port) and `leads worker` on one database and inbox,
    each restarted after it is killed."""

    def __init__(self, env: dict[str, str], smtp: MailServer, stack: contextlib.ExitStack):
        self.env, self.smtp, self.stack = env, smtp, stack
        self.port = free_port()
        self.server, self.worker = self.start(("server", "worker"))

    def start(self, which: tuple[str, ...]) -> tuple[Service, Service]:
        """Starts them at once (each takes seconds to import and, the server, to migrate);
        gives the server and the worker, as they are once ready."""
        env, server, worker = self.env, None, None
        if "server" in which:
            server = self.stack.enter_context(leads_process(env, port=self.port, ready=False))
        if "worker" in which:
            worker = self.stack.enter_context(leads_process(env, "worker", ready=False))
        deadline = time.monotonic() + 90
        while not (server is None or answers(server)) or not (worker is None or started(worker)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{which} did not start in 90 s")
            time.sleep(0.05)
        return server or self.server, worker or self.worker

    def restart(self, victims: tuple[str, ...]) -> None:
        self.server, self.worker = self.start(victims)


def answers(server: Service) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"leads serve exited:\n{server.output()}")
    try:
        return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def started(worker: Service) -> bool:
    """It has its signal handlers once it says this."""
    if worker.process.poll() is not None:
        raise AssertionError(f"leads worker exited:\n{worker.output()}")
    return "delivering notifications" in worker.output()


def message_ids(smtp: MailServer) -> Counter[uuid.UUID]:
    """How many times each outbox message reached the inbox, by its Message-ID."""
    arrived: Counter[uuid.UUID] = Counter()
    with smtp.lock:
        received = list(smtp.received)
    for mail in received:
        assert mail.recipients == [INBOX]
        found = re.fullmatch(r"<([0-9a-f-]{36})@[^>]+>", str(mail.message["Message-ID"]))
        assert found, mail.message["Message-ID"]
        arrived[uuid.UUID(found[1])] += 1
    return arrived


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class Round:
    """One round's load: who is still to die, and when each dies."""

    def __init__(self, deployment: Deployment, crash: Crash) -> None:
        self.deployment, self.crash = deployment, crash
        self.victims = [getattr(deployment, name) for name in crash.victims]
        self.answers = self.emails = 0
        self.acknowledged = asyncio.Event()  # a visitor's lead for staff to work on

    def running(self) -> bool:
        return any(victim.process.poll() is None for victim in self.victims)

    def answered(self) -> None:
        """The server's K-th answer of the round kills it, with other requests in flight. In
        a round that kills both, answers count once the worker is dead: it needs leads."""
        if "server" not in self.crash.victims:
            return
        if "worker" in self.crash.victims and self.deployment.worker.process.poll() is None:
            return
        self.answers += 1
        if self.answers == self.crash.server_on:
            os.kill(self.deployment.server.process.pid, signal.SIGKILL)

    def emailed(self) -> None:
        """In the SMTP server's thread, holding the message the worker has just sent."""
        self.emails += 1
        if "worker" in self.crash.victims and self.emails == self.crash.worker_on:
            os.kill(self.deployment.worker.process.pid, signal.SIGKILL)


async def visitor(client: httpx.AsyncClient, ledger: Ledger, now: Round, tag: str) -> None:
    while now.running():
        email = f"v{uuid.uuid4().hex[:12]}.{tag}@example.com"
        body = {"name": f"Visitor {email[1:7]}", "email": email, "consent": True}
        try:
            response = await client.post("/api/leads", json=body)
        except httpx.TransportError:
            ledger.unanswered += 1
            continue
        ledger.answers[response.status_code] += 1
        if response.status_code == 201:
            ledger.receipts.add(uuid.UUID(response.json()["id"]))
            ledger.unchanged.append(email)
            now.acknowledged.set()
        now.answered()
    now.acknowledged.set()  # no more leads: staff stop waiting for one


async def staff_member(
    client: httpx.AsyncClient, ledger: Ledger, now: Round, rng: random.Random
) -> None:
    """Picks a lead nobody has changed, finds it, changes its status, writes a note on it.
    A lead whose change went unanswered is left alone: its outcome is unknown."""
    while now.running():
        if not ledger.unchanged:
            now.acknowledged.clear()
            await now.acknowledged.wait()
            continue
        email = ledger.unchanged.pop(rng.randrange(len(ledger.unchanged)))
        try:
            found = await client.get("/api/staff/leads", params={"q": email})
            now.answered()
            assert found.status_code == 200, found.text
            (item,) = found.json()["items"]
            lead_id, status = item["id"], rng.choice(STATUSES)
            changed = await client.patch(f"/api/staff/leads/{lead_id}", json={"status": status})
            now.answered()
            ledger.answers[changed.status_code] += 1
            if changed.status_code != 200:
                continue
            ledger.statuses[lead_id] = status
            text = f"Called {uuid.uuid4().hex[:8]}, call back after 5pm"
            noted = await client.post(f"/api/staff/leads/{lead_id}/notes", json={"text": text})
            now.answered()
            ledger.answers[noted.status_code] += 1
            if noted.status_code == 201:
                ledger.notes.setdefault(lead_id, []).append(text)
        except httpx.TransportError:
            ledger.unanswered += 1


async def crash_round(
    deployment: Deployment, crash: Crash, ledger: Ledger, token: str, rng: random.Random, tag: str
) -> None:
    """Load until every victim of the round has been killed at its moment."""
    now = Round(deployment, crash)
    deployment.smtp.on_data = now.emailed
    limits = httpx.Limits(max_keepalive_connections=VISITORS + STAFF, keepalive_expiry=2)
    async with (
        httpx.AsyncClient(base_url=deployment.server.url, timeout=30, limits=limits) as public,
        httpx.AsyncClient(
            base_url=deployment.server.url,
            timeout=30,
            limits=limits,
            headers={"Authorization": f"Bearer {token}"},
        ) as staff,
    ):
        await asyncio.gather(
            *(visitor(public, ledger, now, tag) for _ in range(VISITORS)),
            *(staff_member(staff, ledger, now, rng) for _ in range(STAFF)),
        )
    deployment.smtp.on_data = None
    for victim in now.victims:
        assert await asyncio.to_thread(victim.process.wait, 30) == -signal.SIGKILL


async def stored_receipts(query: Query) -> set[uuid.UUID]:
    leads = await query("SELECT receipt_id FROM leads")
    enquiries = await query("SELECT id FROM enquiries")
    return {as_uuid(r["receipt_id"]) for r in leads} | {as_uuid(r["id"]) for r in enquiries}


async def assert_staff_changes_kept(server_url: str, token: str, ledger: Ledger) -> None:
    async with httpx.AsyncClient(
        base_url=server_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as staff:
        for lead_id, status in ledger.statuses.items():
            lead = (await staff.get(f"/api/staff/leads/{lead_id}")).json()
            assert lead["status"] == status, f"lead {lead_id}: a 200 status change was lost"
            timeline = lead["timeline"]
            assert any(e["kind"] == "status" and e["to"] == status for e in timeline), lead_id
            written = [e["text"] for e in timeline if e["kind"] == "note"]
            # A note whose answer a crash cut off may be there too: it was never acknowledged.
            lost = set(ledger.notes.get(lead_id, [])) - set(written)
            assert not lost, f"lead {lead_id}: {len(lost)} note(s) given a 201 lost"


def integrity(database_url: str) -> str:
    path = database_url.removeprefix("sqlite+aiosqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return ", ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))


@contextlib.contextmanager
def deployed(database_url: str) -> Iterator[Deployment]:
    env = {
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_DISPATCHER": "worker",
        "LEADS_RATE_LIMIT": "off",
        "LEADS_TARPIT_SECONDS": "0",
        "LEADS_INBOX": INBOX,
        "LEADS_RETRY_BASE_SECONDS": "0.05",
        "LEADS_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT),
        "LEADS_LOG_LEVEL": "warning",
    }
    with mail_server() as smtp, contextlib.ExitStack() as stack:
        env["LEADS_SMTP_URL"] = f"smtp://127.0.0.1:{smtp.port}?starttls=off"
        deployment = Deployment(env, smtp, stack)
        try:
            yield deployment
        except BaseException:
            for process in (deployment.server, deployment.worker):  # for the failure report
                print(f"--- {' '.join(map(str, process.process.args))}\n{process.output()[-3000:]}")
            raise


async def crash_rounds(database_url: str, query: Query, rounds: int) -> str:
    """``rounds`` crashes under load; gives what was measured, in a line."""
    seed = int(os.environ.get("CRASH_TEST_SEED") or random.SystemRandom().randrange(10**6))
    rng, tag = random.Random(seed), uuid.uuid4().hex[:8]
    await migrate(make_settings(database_url))  # `leads token create` needs the tables
    made = leads_cli(database_url, "token", "create", "--name", "crash-test", "--scope", "write")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    ledger, began = Ledger(), time.monotonic()
    sqlite = database_url.startswith("sqlite")
    with deployed(database_url) as deployment:
        for number in range(rounds):
            crash = Crash(VICTIMS[number % len(VICTIMS)], rng.randint(1, 40), rng.randint(1, 8))
            await crash_round(deployment, crash, ledger, token, rng, tag)
            if sqlite:
                assert integrity(database_url) == "ok", f"round {number}: damaged after a crash"
            deployment.restart(crash.victims)
            missing = ledger.receipts - await stored_receipts(query)
            assert not missing, f"round {number}: {len(missing)} acknowledged lead(s) lost"
            await assert_staff_changes_kept(deployment.server.url, token, ledger)

        async def all_delivered() -> list[dict[str, Any]] | None:
            rows = await query("SELECT id, lead_id, kind, status FROM outbox")
            return rows if all(r["status"] == "delivered" for r in rows) else None

        outbox = await eventually(all_delivered, within=60, every=0.1, what="every email sent")
        deployment.worker.process.send_signal(signal.SIGTERM)  # then nothing more arrives
        assert await asyncio.to_thread(deployment.worker.process.wait, 30) == 0
        arrived = message_ids(deployment.smtp)
    leads = {as_uuid(r["id"]) for r in await query("SELECT id FROM leads")}
    clinic = {
        as_uuid(r["id"]): as_uuid(r["lead_id"]) for r in outbox if r["kind"] == "lead.created"
    }
    assert set(clinic.values()) == leads, "a lead has no clinic email"
    lost = set(clinic) - set(arrived)
    assert not lost, f"{len(lost)} clinic email(s) never arrived"
    repeats = sum(arrived.values()) - len(arrived)
    assert len(ledger.receipts) > rounds, "the visitors' load hardly ran"
    assert ledger.statuses, "no staff change was acknowledged"
    integrity_note = ", integrity_check ok after every crash" if sqlite else ""
    return (
        f"{rounds} crashes (seed {seed}): {len(ledger.receipts)} leads acknowledged, 0 lost; "
        f"{len(leads)} stored, {len(arrived)} clinic emails arrived, 0 lost, {repeats} sent "
        f"twice; {len(ledger.statuses)} status changes and "
        f"{sum(map(len, ledger.notes.values()))} notes acknowledged, 0 lost; "
        f"{ledger.unanswered} requests cut off{integrity_note}; "
        f"{time.monotonic() - began:.0f} s"
    )


async def test_crashes_of_server_and_worker_lose_nothing(
    database_url: str, query: Query, record_property: Any
) -> None:
    record_property("measured", await crash_rounds(database_url, query, QUICK_ROUNDS))


@pytest.mark.long
async def test_twenty_crashes_of_server_and_worker_lose_nothing(
    database_url: str, query: Query, record_property: Any
) -> None:
    record_property("measured", await crash_rounds(database_url, query, LONG_ROUNDS))
