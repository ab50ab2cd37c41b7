"""How visitors and staff fare while a peer hangs or misbehaves. A real `leads serve` (SQLite,
its own dispatcher) takes visitors at a steady rate while a receptionist reloads the lead
list (`GET /staff`, signed in); first with every peer healthy, then with each misbehaving
peer of `peers.py` in turn: an SMTP server that never answers, one that hangs up after
DATA, a webhook receiver that answers after 60 s, one that resets connections, an email API
answering 500 and 429. Deliveries are cut off at LEADS_DELIVERY_TIMEOUT_SECONDS and retried
every second or two meanwhile, so the misbehaving peer is busy the whole run. Each run also
has a healthy webhook receiver: every lead's webhook must reach it once, and soon.

The intake and staff latencies of each run are compared with the healthy run's, measured
in the same test on the same machine:

    .venv/bin/pytest tests/faults/test_faults_peers_latency.py -rA
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.peers import Peer, PeerProcess, peer_process, running_peer
from tests.servers import Service, leads_process
from tests.support import eventually, leads_env, run_leads

pytestmark = pytest.mark.slow

SECRET = "peers-latency-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"p" * 32).decode()
STAFF, PASSWORD = "front@clinic.example", "correct horse battery"

RATE = 20.0  # visitors a second
SECONDS = 5.0  # of load per run
STAFF_EVERY = 0.2  # seconds between the receptionist's reloads
TIMEOUT = 3.0  # LEADS_DELIVERY_TIMEOUT_SECONDS: a hanging attempt holds its slot this long
ON_TIME = 3.0  # seconds from a lead's 201 to its healthy webhook, at most
# Not slowed: a run's p99 within twice the healthy run's, plus room for a machine shared with
# other tests (a p99 of 100 requests is nearly their slowest). A delivery that held up
# requests would add the whole timeout (3 s) to them.
SLOWER, SLACK_MS = 2.0, 750.0

# The case, and what its misbehaving peer does (tests/faults/peers.py).
CASES = {
    "healthy": "http_ok",  # a second healthy webhook receiver in the misbehaving one's place
    "smtp_never_answers": "silent",
    "smtp_drops_after_data": "smtp_drop_after_data",
    "webhook_answers_after_60s": "http_slow",
    "webhook_resets": "http_reset",
    "email_api_500_then_429": "http_500_429",
}


def p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


@dataclass
class Run:
    case: str
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    intake: list[float] = field(default_factory=list)  # seconds, of each 201
    staff: list[float] = field(default_factory=list)  # seconds, of each 200
    answered: dict[str, float] = field(default_factory=dict)  # receipt id -> time of its 201
    late: list[float] = field(default_factory=list)  # 201 to its healthy webhook, seconds
    repeats: int = 0  # healthy webhooks that arrived more than once
    bad_connections: int = 0
    server_cpu: float = 0.0  # the server's CPU seconds per second of the run, load and drain

    def line(self) -> str:
        return (
            f"{self.case}: intake p50 / p99 {1000 * p(self.intake, 0.5):.0f} / "
            f"{1000 * p(self.intake, 0.99):.0f} ms ({len(self.intake)} leads); /staff p50 / p99 "
            f"{1000 * p(self.staff, 0.5):.0f} / {1000 * p(self.staff, 0.99):.0f} ms "
            f"({len(self.staff)} reads); healthy webhook at most {max(self.late, default=0):.2f}"
            f" s after its lead's 201; {self.bad_connections} connections to the peer; server "
            f"CPU {self.server_cpu:.0%} of a core"
        )


def channels(case: str, bad: PeerProcess, healthy: Peer) -> dict[str, str]:
    """The settings that send this case's notifications to its peers."""
    if case.startswith("smtp"):
        to_bad = {"smtp_url": f"smtp://127.0.0.1:{bad.port}?starttls=off"}
    elif case.startswith("email_api"):
        to_bad = {
            "email_api": "postmark",
            "email_api_key": "server-token",
            "email_api_base_url": f"http://127.0.0.1:{bad.port}",
        }
    else:
        return {"webhook_urls": f"{bad.url},{healthy.url}", "webhook_secret": WEBHOOK_SECRET}
    return {
        **to_bad,
        "inbox": "desk@clinic.example",
        "webhook_urls": healthy.url,
        "webhook_secret": WEBHOOK_SECRET,
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with a staff account, copied for each run."""
    workdir = tmp_path_factory.mktemp("peers-latency")
    database = workdir / "template.db"
    env = leads_env(database_url=f"sqlite:///{database}", secret_key=SECRET)
    assert run_leads("migrate", env=env, cwd=workdir).returncode == 0
    added = run_leads("user", "add", STAFF, env=env, cwd=workdir, stdin=f"{PASSWORD}\n" * 2)
    assert added.returncode == 0, added.stderr
    return database


async def sign_in(client: httpx.AsyncClient) -> None:
    page = await client.get("/staff/login")
    token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
    data = {"login_token": token, "email": STAFF, "password": PASSWORD}
    answer = await client.post("/staff/login", data=data)
    assert answer.status_code == 303, answer.text


async def visitor(client: httpx.AsyncClient, run: Run, i: int) -> None:
    body = {
        "name": f"Visitor {i}",
        "email": f"v{i}.{uuid.uuid4().hex[:8]}@example.com",
        "message": "My shoulder hurts when I lift my arm.",
        "consent": True,
    }
    started = time.monotonic()
    try:
        answer = await client.post("/api/leads", json=body)
    except httpx.TransportError as exc:
        run.statuses[f"submit {type(exc).__name__}"] += 1
        return
    run.statuses[f"submit {answer.status_code}"] += 1
    if answer.status_code == 201:
        run.answered[answer.json()["id"]] = time.monotonic()
        run.intake.append(run.answered[answer.json()["id"]] - started)


async def receptionist(client: httpx.AsyncClient, run: Run, until: float) -> None:
    await sign_in(client)
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            listing = await client.get("/staff", headers={"Accept": "text/html"})
        except httpx.TransportError as exc:
            run.statuses[f"staff {type(exc).__name__}"] += 1
        else:
            run.statuses[f"staff {listing.status_code}"] += 1
            if listing.status_code == 200:
                run.staff.append(time.monotonic() - started)
        await asyncio.sleep(max(0.0, started + STAFF_EVERY - time.monotonic()))


async def load(url: str, run: Run, healthy: Peer) -> None:
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as visitors,
        httpx.AsyncClient(base_url=url, timeout=30) as staff,
    ):
        start = time.monotonic()
        reading = asyncio.create_task(receptionist(staff, run, start + SECONDS))
        submitting = []
        for i in range(int(RATE * SECONDS)):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            submitting.append(asyncio.create_task(visitor(visitors, run, i)))
        await asyncio.gather(reading, *submitting)

    async def all_arrived() -> bool:
        return healthy.count() >= len(run.answered)

    with contextlib.suppress(AssertionError):  # counted below, whatever arrived
        await eventually(all_arrived, what="every healthy webhook", within=20)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(case: str, database: Path, bad: PeerProcess, healthy: Peer) -> Iterator[Service]:
    env = leads_env(
        database_url=f"sqlite:///{database}",
        secret_key=SECRET,
        rate_limit="off",  # every visitor here is 127.0.0.1
        log_level="warning",
        delivery_timeout_seconds=str(TIMEOUT),
        retry_base_seconds="1",
        shutdown_grace_seconds="0.5",
        **channels(case, bad, healthy),
    )
    with leads_process(env) as service:
        yield service
        assert "Traceback" not in service.output(), service.output()[-4000:]


def measure(case: str, template: Path, workdir: Path) -> Run:
    database = workdir / f"{case}.db"
    shutil.copy(template, database)
    run = Run(case)
    with peer_process(CASES[case], delay=60) as bad, running_peer("http_ok") as healthy:
        with serving(case, database, bad, healthy) as service:
            before, started = cpu_seconds(service.process.pid), time.monotonic()
            asyncio.run(load(service.url, run, healthy))
            spent = cpu_seconds(service.process.pid) - before
            run.server_cpu = spent / (time.monotonic() - started)
        with healthy.lock:
            arrivals = list(healthy.arrivals)
    run.bad_connections = bad.connections
    receipts = collections.Counter(json.loads(a.body)["data"]["enquiry_id"] for a in arrivals)
    run.repeats = sum(n > 1 for n in receipts.values())
    first = {}
    for arrival in arrivals:
        first.setdefault(json.loads(arrival.body)["data"]["enquiry_id"], arrival.at)
    run.late = [first[r] - at for r, at in run.answered.items() if r in first]
    missing = set(run.answered) - set(first)
    assert not missing, f"{case}: {len(missing)} leads' healthy webhooks never arrived"
    return run


def test_a_misbehaving_peer_slows_neither_intake_nor_the_staff_pages(
    template: Path, tmp_path: Path, record_property: Any
) -> None:
    runs = [measure(case, template, tmp_path) for case in CASES]
    for run in runs:
        record_property("measured", run.line())
    healthy, *others = runs
    for run in runs:
        failed = {k: n for k, n in run.statuses.items() if not k.endswith((" 200", " 201"))}
        assert not failed, f"{run.case}: {failed}"
        assert len(run.intake) == int(RATE * SECONDS), run.case
        assert run.repeats == 0, f"{run.case}: {run.repeats} webhooks delivered twice"
        assert max(run.late) <= ON_TIME, f"{run.case}: {sorted(run.late)[-5:]}"
    for run in others:
        assert run.bad_connections >= 2, f"{run.case}: the peer was not retried"
        for name in ("intake", "staff"):
            bound = SLOWER * p(getattr(healthy, name), 0.99) + SLACK_MS / 1000
            assert p(getattr(run, name), 0.99) <= bound, f"{run.case} slowed {name}: {run.line()}"
