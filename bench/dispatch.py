"""The `leads worker`'s CPU per email: what the dispatcher pays to claim, write, send and
record one clinic email, draining a backlog to a local SMTP sink.

    .venv/bin/python bench/dispatch.py                            # this tree
    .venv/bin/python bench/dispatch.py --against 4ebb995 --repeat 3
    .venv/bin/python bench/dispatch.py --engine postgresql
    .venv/bin/python bench/dispatch.py --profile /tmp/worker.txt  # py-spy, this tree

Each measure: a fresh database; `leads serve` with LEADS_DISPATCHER=worker (so nothing is
sent) takes ``--leads`` submissions through POST /api/leads and is stopped; then a `leads
worker` is started against bench/sink.py and drains the backlog. Its CPU (utime + stime
from /proc, every thread) is read at its first email and at its last: the figure is that
difference over the emails between them, so start-up and the first claim's compilations
are left out. Also the emails per second over the same span, and a check that every lead
was emailed exactly once. With ``--against`` the same measure runs on a git revision's
code (``git archive`` into a temporary directory, run with this venv), interleaved with
this tree's, and the ratio of the medians is printed. Not a test: the machine is shared,
so the figures move with its load; compare ratios from one run.

``--profile FILE`` drains once with ``py-spy record --gil -f raw`` attached to the worker
from its first email to its last, and prints which share of the samples fell in each part
of the work (``PARTS``; py-spy's own sampling slows the worker, so no figure is quoted
from that run).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for targets
import targets

ROOT = targets.ROOT
HOST = targets.HOST
FIRST_EMAIL_TIMEOUT = 60.0
DRAIN_TIMEOUT = 600.0
PY_SPY = [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "-f", "raw", "-r", "250"]
CONCURRENCY = 16  # submissions in flight while the backlog is made

# What a py-spy stack is counted under: the first part (in this order) any of whose marks
# is in one of its frames, so each sample counts once. ACROSS: shares that cut across them.
PARTS = {
    "aiosqlite's thread (sqlite3 itself)": ("Connection.run (aiosqlite", "_connection_worker"),
    "the claim (pick, UPDATE, rows read back)": ("claim_due", "load_subjects", "_subjects ("),
    "the outcome write": ("record_outcomes", "_write_outcomes"),
    "idle look-ups, housekeeping": ("next_due (", "_housekeeping"),
    "the turn's transaction otherwise (commit)": ("_record_and_claim", "Dispatcher._claim ("),
    "the content (notify/content.py)": ("clinic_email", "autoreply_email", "digest_email"),
    "the MIME message (notify/mime.py)": ("to_outgoing", "as_bytes"),
    "the SMTP exchange (aiosmtplib)": ("aiosmtplib",),
    "logging": ("logging/", "leads/logs.py"),
    "metrics": ("prometheus_client", "leads/metrics.py"),
    "the rest (the event loop itself)": ("",),
}
ACROSS = {"SQLAlchemy": "sqlalchemy/", "aiosqlite": "aiosqlite/", "asyncio": "asyncio/"}


# Numbers set aside for drama (Ofcom): a thousand each, so no lead shares one with another
# (a shared number would make it a possible duplicate, whose email links to the earlier).
PHONES = ("+44 20 7946 0", "+44 161 496 0", "+44 113 496 0", "+44 7700 900")


def submission(i: int) -> dict[str, object]:
    return {
        "name": f"Zoë Müller {i}",
        "email": f"z{uuid.uuid4().hex[:10]}@example.org",
        "phone": f"{PHONES[i // 1000]}{i % 1000:03d}",
        "message": "Lower back pain for three weeks, worse in the morning.",
        "consent": True,
    }


async def submit(port: int, count: int) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=120) as client:
        room = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            async with room:
                answer = await client.post("/api/leads", json=submission(i))
                if answer.status_code != 201:
                    raise RuntimeError(f"POST /api/leads answered {answer.status_code}")

        await asyncio.gather(*(one(i) for i in range(count)))


@dataclass
class Drain:
    cpu_ms_per_email: float
    emails_per_second: float
    emails: int  # between the first email and the last


def settings_env(tree: Path, database_url: str, smtp_port: int, http_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(tree),  # before the venv's own (editable) leads
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        "LEADS_SMTP_URL": f"smtp://{HOST}:{smtp_port}?starttls=off",
        "LEADS_INBOX": "desk@clinic.example",
        "LEADS_RATE_LIMIT": "off",
        "LEADS_MIN_FILL_SECONDS": "0",
        "LEADS_LOG_LEVEL": "warning",
        "LEADS_PUBLIC_URL": f"http://{HOST}:{http_port}",
        "LEADS_DISPATCHER": "worker",
        "LEADS_SHUTDOWN_GRACE_SECONDS": "1",
    }


def lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def wait_for_lines(path: Path, count: int, worker: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    every = 0.002 if count == 1 else 0.05
    while lines(path) < count:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{lines(path)} of {count} emails after {timeout} s")
        time.sleep(every)


def drain(tree: Path, database_url: str, count: int, profile: Path | None = None) -> Drain:
    """One measure: make ``count`` leads with the dispatcher off, then drain them."""
    with tempfile.TemporaryDirectory(prefix="leads-dispatch-") as tmp:
        workdir = Path(tmp)
        if database_url.startswith("sqlite"):
            database_url = f"sqlite+aiosqlite:///{workdir / 'leads.db'}"
        with targets.smtp_sink(workdir) as (smtp_port, inbox):
            port = targets.free_port()
            env = settings_env(tree, database_url, smtp_port, port)
            serve = [sys.executable, "-m", "leads", "serve", "--host", HOST, "--port", str(port)]
            server = targets.spawn("leads", serve, env, port, workdir / "serve.log")
            try:
                asyncio.run(submit(port, count))
            finally:
                server.stop()
            leads = set(targets.leads_of_receipts(database_url.replace("+asyncpg", "")).values())
            if lines(inbox):
                raise RuntimeError("an email left while the dispatcher was off")
            command = [sys.executable, "-m", "leads", "worker"]
            with open(workdir / "worker.log", "wb") as log:
                worker = subprocess.Popen(
                    command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
                )
            spy = None
            try:
                wait_for_lines(inbox, 1, worker, FIRST_EMAIL_TIMEOUT)
                if profile is not None:  # the drain only: not the start-up, not the stop
                    spy = subprocess.Popen(
                        [*PY_SPY, "-o", str(profile), "-p", str(worker.pid)],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                cpu0, t0, n0 = targets.cpu_seconds(worker.pid), time.monotonic(), lines(inbox)
                wait_for_lines(inbox, count, worker, DRAIN_TIMEOUT)
                cpu1, t1, n1 = targets.cpu_seconds(worker.pid), time.monotonic(), lines(inbox)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(timeout=targets.STOP_TIMEOUT)
                worker.send_signal(signal.SIGINT)
                worker.wait(timeout=targets.STOP_TIMEOUT)
            finally:
                for process in (spy, worker):
                    if process is not None and process.poll() is None:
                        process.kill()
                        process.wait()
            time.sleep(0.2)  # a duplicate would be written by now: the worker has stopped
            sent = collections.Counter(line.split()[1] for line in inbox.read_text().splitlines())
            twice = [lead for lead, n in sent.items() if n > 1]
            if set(sent) != leads or twice:
                raise RuntimeError(
                    f"{len(leads)} leads, {len(sent)} emailed, {len(twice)} more than once, "
                    f"{len(leads - set(sent))} never; see {workdir}"
                )
        emails = n1 - n0
        return Drain((cpu1 - cpu0) * 1000 / emails, emails / (t1 - t0), emails)


def tree_at(revision: str, into: Path) -> Path:
    """The package (and its migrations) as they were at ``revision``."""
    archive = subprocess.run(
        ["git", "archive", revision, "leads", "alembic"], cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    migrations = into / "leads" / "_migrations"
    if not migrations.exists():
        migrations.symlink_to(into / "alembic")
    return into


@contextlib.contextmanager
def database_urls(engine: str) -> Iterator[Iterator[str]]:
    """A fresh database URL for each measure."""
    if engine == "sqlite":
        yield iter(lambda: "sqlite", None)  # drain() puts it in the measure's directory
        return
    with targets.postgres_cluster() as base:
        names = (f"dispatch_{i}" for i in range(1_000_000))
        urls = (targets.create_database(base, name) for name in names)
        yield (url.replace("postgresql://", "postgresql+asyncpg://", 1) for url in urls)


def summarise(profile: Path) -> None:
    """Each part's share of the GIL-holding samples (py-spy's raw format: one folded stack
    per line, its count last)."""
    parts: collections.Counter[str] = collections.Counter()
    across: collections.Counter[str] = collections.Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        parts[next(p for p, marks in PARTS.items() if any(m in stack for m in marks))] += int(count)
        across.update({name: int(count) for name, mark in ACROSS.items() if mark in stack})
    print(f"py-spy --gil, {total} samples ({profile}):")
    for part in PARTS:
        print(f"  {part:<40} {parts[part] / max(total, 1):6.1%}")
    for name in ACROSS:
        share = across[name] / max(total, 1)
        print(f"  {'of all, with ' + name + ' on the stack':<40} {share:6.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=2000, help="the backlog (default 2000)")
    parser.add_argument("--against", help="a git revision whose dispatcher to measure too")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--profile", type=Path, help="drain once under py-spy, into this file")
    args = parser.parse_args()
    if not 0 < args.leads <= 1000 * len(PHONES):
        parser.error(f"--leads: 1 to {1000 * len(PHONES)}")
    with tempfile.TemporaryDirectory() as tmp, database_urls(args.engine) as urls:
        if args.profile is not None:
            drained = drain(ROOT, next(urls), args.leads, args.profile)
            print(f"under py-spy: {drained.cpu_ms_per_email:.2f} ms per email")
            summarise(args.profile)
            return 0
        trees = {"this tree": ROOT}
        if args.against:
            trees[args.against] = tree_at(args.against, Path(tmp))
        runs: dict[str, list[Drain]] = {name: [] for name in trees}
        for _ in range(args.repeat):  # interleaved, so load moves every tree's figures alike
            for name, tree in trees.items():
                one = drain(tree, next(urls), args.leads)
                runs[name].append(one)
                print(
                    f"  {name}: {one.cpu_ms_per_email:.2f} ms per email, "
                    f"{one.emails_per_second:.0f} emails/s ({one.emails} emails)",
                    flush=True,
                )
    print(f"{args.engine}, {args.leads} leads, medians of {args.repeat} (every lead emailed once)")
    medians = {}
    for name, drains in runs.items():
        medians[name] = statistics.median(d.cpu_ms_per_email for d in drains)
        rate = statistics.median(d.emails_per_second for d in drains)
        spread = ", ".join(f"{d.cpu_ms_per_email:.2f}" for d in drains)
        print(f"  {name}: {medians[name]:.2f} ms CPU per email ({spread}), {rate:.0f} emails/s")
    if args.against:
        ratio = medians["this tree"] / medians[args.against]
        print(f"  this tree / {args.against}: {ratio:.2f}x the CPU per email")
    return 0


if __name__ == "__main__":
    sys.exit(main())
