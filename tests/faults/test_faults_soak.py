"""Soak: a real `leads serve` (SQLite) taking submissions at a steady rate for a long time,
its notifications going to a real SMTP sink (bench/sink.py, in its own process), with staff
reads and updates mixed in. Afterwards: no request failed, the server's memory did not keep
growing after warm-up, the outbox drained, and every lead was emailed exactly once.

    LEADS_SOAK_SECONDS=1800 .venv/bin/pytest tests/faults/test_faults_soak.py -m long

LEADS_SOAK_SECONDS (default 1800) and LEADS_SOAK_RATE (submissions a second, default 50)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import Service, free_port, leads_process
from tests.support import eventually, leads_env, run_leads

pytestmark = [pytest.mark.long, pytest.mark.slow]

SECONDS = float(os.environ.get("LEADS_SOAK_SECONDS", "1800"))
RATE = float(os.environ.get("LEADS_SOAK_RATE", "50"))
IN_FLIGHT = 500  # submissions waiting for an answer, at most; beyond it one is counted missed
WARM_UP = min(300.0, SECONDS / 5)  # memory is compared from the end of this
SECRET = "soak-test-secret-0123456789abcdef"
SINK = Path(__file__).parents[2] / "bench" / "sink.py"
Record = Callable[[str, object], None]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, record = free_port(), tmp_path / "inbox.txt"
    process = subprocess.Popen(
        [sys.executable, str(SINK), str(port), str(record)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield port, record
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


class Tally:
    def __init__(self) -> None:
        self.statuses: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []
        self.growth = 0.0
        self.samples: list[tuple[float, int]] = []

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0


async def submit(client: httpx.AsyncClient, tally: Tally, i: int) -> None:
    body = {
        "name": f"Soak Visitor {i}",
        "email": f"soak.{i}.{uuid.uuid4().hex[:8]}@example.com",
        "message": "My back hurts when I sit for long.",
        "consent": True,
    }
    start = time.monotonic()
    try:
        answer = await client.post("/api/leads", json=body)
        key = f"submit {answer.status_code}"
        if answer.status_code == 201:
            tally.latencies.append(time.monotonic() - start)
    except httpx.TransportError as exc:
        key = f"submit {type(exc).__name__}"
    tally.statuses[key] += 1


async def staff_round(client: httpx.AsyncClient, tally: Tally, auth: dict[str, str]) -> None:
    """What a receptionist's screen does: the list, one lead, its status changed."""
    try:
        listed = await client.get("/api/staff/leads", params={"limit": 20}, headers=auth)
        tally.statuses[f"list {listed.status_code}"] += 1
        items = listed.json().get("items", []) if listed.status_code == 200 else []
        if not items:
            return
        lead = await client.get(f"/api/staff/leads/{items[0]['id']}", headers=auth)
        tally.statuses[f"read {lead.status_code}"] += 1
        if lead.status_code != 200:
            return
        changed = await client.patch(
            f"/api/staff/leads/{items[0]['id']}",
            json={"status": "contacted"},
            headers={**auth, "If-Match": lead.headers["ETag"]},
        )
        # 412: someone else changed it first (the list's newest lead is shared): expected.
        tally.statuses[f"update {changed.status_code if changed.status_code != 412 else 200}"] += 1
    except httpx.TransportError as exc:
        tally.statuses[f"staff {type(exc).__name__}"] += 1


async def soak(service: Service, auth: dict[str, str], record: Record) -> Tally:
    tally = Tally()
    pid = service.process.pid
    samples: list[tuple[float, int]] = []
    # A connection idle for 5 s is closed by uvicorn; one reused just then fails (ReadError)
    # through no fault of the server's (nothing was stored): reuse none idle that long.
    limits = httpx.Limits(
        max_connections=IN_FLIGHT, max_keepalive_connections=100, keepalive_expiry=3
    )
    timeout = httpx.Timeout(30, pool=None)  # waiting for a free connection is not an error
    async with httpx.AsyncClient(base_url=service.url, timeout=timeout, limits=limits) as client:
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        i = 0
        next_sample = start
        while (now := time.monotonic()) - start < SECONDS:
            due = start + i / RATE
            if due > now:
                await asyncio.sleep(due - now)
            if len(tasks) >= IN_FLIGHT:  # the server is behind: count it, don't pile up
                tally.statuses["submit missed (server behind)"] += 1
            else:
                task = asyncio.create_task(submit(client, tally, i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if i % int(RATE) == 0:  # staff, once a second
                staff = asyncio.create_task(staff_round(client, tally, auth))
                tasks.add(staff)
                staff.add_done_callback(tasks.discard)
            if now >= next_sample:
                samples.append((now - start, rss_kib(pid)))
                next_sample += 5
            i += 1
        await asyncio.gather(*tasks)
    samples.append((time.monotonic() - start, rss_kib(pid)))
    warm = [rss for at, rss in samples if at >= WARM_UP]
    base, peak, end = warm[0], max(warm), samples[-1][1]
    growth = (peak - base) / base
    record(
        "measured",
        f"soak {SECONDS:.0f} s at {RATE:.0f}/s: {i} submissions, p99 {tally.p99_ms():.0f} ms, "
        f"RSS after warm-up {base // 1024} MiB, peak {peak // 1024} MiB ({growth:+.1%}), "
        f"end {end // 1024} MiB; load average {os.getloadavg()[0]:.1f}; {dict(tally.statuses)}",
    )
    tally.growth, tally.samples = growth, samples
    return tally


def pending(database: Path) -> int:
    with sqlite3.connect(database) as db:
        (left,) = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()
    return int(left)


def test_soak(tmp_path: Path, sink: tuple[int, Path], record_property: Record) -> None:
    database = tmp_path / "leads.db"
    smtp_port, inbox = sink
    env = leads_env(
        database_url=f"sqlite:///{database}",
        secret_key=SECRET,
        rate_limit="off",  # every visitor here is 127.0.0.1
        log_level="warning",
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        inbox="clinic@example.com",
    )
    assert run_leads("migrate", env=env, cwd=tmp_path).returncode == 0
    made = run_leads("token", "create", "--name", "soak", "--scope", "write", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    auth = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}

    with leads_process(env) as service:
        tally = asyncio.run(soak(service, auth, record_property))
        left_at_end = pending(database)
        started = time.monotonic()

        async def drained() -> bool:
            return pending(database) == 0

        # Figures first, assertions after, so that a failing run still reports them all.
        with contextlib.suppress(AssertionError):
            asyncio.run(eventually(drained, within=max(300, SECONDS), every=1, what="drained"))
        drain_seconds = time.monotonic() - started
        with sqlite3.connect(database) as db:
            lead_ids = {str(uuid.UUID(r[0])) for r in db.execute("SELECT id FROM leads")}
            dead = db.execute("SELECT count(*) FROM outbox WHERE status = 'dead'").fetchone()[0]
        left = pending(database)
        emailed = collections.Counter(line.split()[1] for line in inbox.read_text().splitlines())
        repeats = {k: n for k, n in emailed.items() if n > 1}
        record_property(
            "measured",
            f"soak: {len(lead_ids)} leads, {sum(emailed.values())} emails, "
            f"{len(repeats)} repeated, {dead} dead; outbox {left_at_end} pending when the load "
            f"stopped, {left} pending {drain_seconds:.0f} s later",
        )
        failed = {k: v for k, v in tally.statuses.items() if not k.endswith((" 200", " 201"))}
        assert not failed, f"failed requests: {failed}"
        assert tally.growth <= 0.10, f"RSS grew {tally.growth:.1%} after warm-up: {tally.samples}"
        assert left == 0, f"{left} notifications still pending {drain_seconds:.0f} s after"
        assert dead == 0
        assert not repeats, f"emailed more than once: {len(repeats)} leads"
        assert set(emailed) == lead_ids, "some lead was not emailed, or an email names no lead"
        assert "Traceback" not in service.output(), service.output()[-4000:]
