"""CPU per outbox claim as the backlog grows: what a dispatcher pays to take its next few
messages when thousands are waiting (a burst, or a channel that was down).

    .venv/bin/python bench/claims.py                     # this tree
    .venv/bin/python bench/claims.py --against 54e6d36   # and the code at a git revision
    .venv/bin/python bench/claims.py --others 20         # 20 more routes behind the backlog
    .venv/bin/python bench/claims.py --engine postgresql # a throwaway cluster (tests/pgcluster.py)

For each backlog size a fresh database (built by that tree's `leads migrate`) gets that many
pending, due messages on one route (the clinic inbox), and ``--others`` messages due after
all of them, each on a webhook route of its own; then claims of 16 (as the dispatcher makes,
slots of 8 per route) are made and given back, again and again, so the backlog stays the
same size. A claim fills the inbox's slots and must find the other routes' messages (or
that there are none) behind its backlog.
Prints the median over repeats of microseconds of CPU per claim: the process's
(``time.process_time``), and on PostgreSQL also the server backends' that ran its
statements (from /proc: the same machine), and each size's ratio to the smallest
backlog's in the same run: a claim that seeks stays near 1x, one that reads or sorts the
backlog grows with it. Not a test: the machine is
shared, so figures move with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BACKLOGS = (100, 1_000, 10_000, 50_000)
DELIVERED = 20_000  # history beside the backlog, as a working outbox has
CLAIMS = 200


def rows(columns: list[str], pending: int, others: int) -> list[tuple[Any, ...]]:
    """``pending`` due messages to the inbox, ``others`` due after them (a webhook route
    each), and some delivered history."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for i in range(DELIVERED + pending + others):
        at = start + timedelta(milliseconds=i)
        status = "delivered" if i < DELIVERED else "pending"
        other = i >= DELIVERED + pending
        values = {
            "id": uuid.uuid4(), "kind": "lead_created", "status": status,
            "channel": "webhook" if other else "smtp",
            "target": f"https://hooks.example/{i}" if other else None,
            "attempts": 0 if status == "pending" else 1,
            "created_at": at, "scheduled_from": at, "next_attempt_at": at,
        }  # fmt: skip
        made.append(tuple(values.get(c) for c in columns))
    return made


def fill(path: Path, pending: int, others: int) -> None:
    """The messages, written straight to a SQLite database's table."""
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(outbox)")]
    as_text = [
        tuple(
            v.hex if isinstance(v, uuid.UUID)
            else v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime)
            else v
            for v in row
        )
        for row in rows(columns, pending, others)
    ]  # fmt: skip
    marks = ",".join("?" * len(columns))
    insert = f"INSERT INTO outbox ({','.join(columns)}) VALUES ({marks})"  # noqa: S608 (our names)
    db.executemany(insert, as_text)
    db.commit()
    db.close()


async def fill_postgresql(url: str, pending: int, others: int) -> None:
    """The messages, copied into a PostgreSQL database's table (then ANALYZE, as autovacuum
    would soon do)."""
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        columns = [
            r["column_name"]
            for r in await connection.fetch(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'outbox' ORDER BY ordinal_position"
            )
        ]
        made = rows(columns, pending, others)
        await connection.copy_records_to_table("outbox", records=made, columns=columns)
        await connection.execute("ANALYZE outbox")
    finally:
        await connection.close()


def process_cpu(pid: int) -> float:
    """Seconds of CPU a process (here a PostgreSQL backend) has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def claim_cpu(url: str) -> tuple[float, float]:
    """Microseconds of CPU per claim of 16 (the claim and its release): this process's,
    and on PostgreSQL the backends' that ran the statements (0 on SQLite)."""
    from leads.settings import Settings
    from leads.storage import outbox
    from leads.storage.database import Database

    database = Database.from_settings(Settings(database_url=url, secret_key="x" * 32))
    backends: dict[int, float] = {}  # pid: its CPU when first seen
    try:
        began = time.process_time()
        for _ in range(CLAIMS):
            now = datetime.now(UTC)
            async with database.writing() as session:
                if not url.startswith("sqlite"):
                    raw = await (await session.connection()).get_raw_connection()
                    pid = raw.driver_connection.get_server_pid()
                    backends.setdefault(pid, process_cpu(pid))
                claimed = await outbox.claim_due(
                    session=session, worker="bench", now=now,
                    lease_until=now + timedelta(minutes=5), limit=16, per_route=8,
                )  # fmt: skip
                assert claimed, "nothing claimed"
                ids = [m.id for m in claimed]
                await outbox.release_claims(session=session, ids=ids, worker="bench")
        spent = time.process_time() - began
        served = sum(process_cpu(pid) - cpu for pid, cpu in backends.items())
        return spent / CLAIMS * 1e6, served / CLAIMS * 1e6
    finally:
        await database.close()


def child(pending: int, others: int, url: str | None) -> tuple[float, float]:
    """One measure in this process, on the tree ``leads`` is imported from (on the empty
    PostgreSQL database ``url``, or a new SQLite one)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims.db"
        url = url or f"sqlite+aiosqlite:///{path}"
        env = {**os.environ, "LEADS_DATABASE_URL": url, "LEADS_SECRET_KEY": "x" * 32}
        subprocess.run(
            [sys.executable, "-m", "leads", "migrate"], env=env, check=True, capture_output=True
        )
        if url.startswith("sqlite"):
            fill(path, pending, others)
        else:
            asyncio.run(fill_postgresql(url, pending, others))
        return asyncio.run(claim_cpu(url))


def tree_at(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision, "leads", "alembic"], cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "leads" / "_migrations").symlink_to(into / "alembic")
    return into


def measure(tree: Path, pending: int, others: int, url: str | None) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    database = ["--database", url] if url else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(pending), "--others", str(others), *database],
        env=env, cwd=tree, check=True, capture_output=True, text=True,
    )  # fmt: skip
    figures = json.loads(out.stdout)
    return float(figures["cpu_us"]), float(figures["server_us"])


@contextlib.contextmanager
def database_urls(engine: str) -> Iterator[Iterator[str | None]]:
    """A fresh, empty database for each measure (None: the measure makes a SQLite one)."""
    if engine == "sqlite":
        yield iter(lambda: None, 0)
        return
    import targets  # bench/targets.py: the throwaway PostgreSQL cluster

    with targets.postgres_cluster() as base:
        names = (f"claims_{i}" for i in range(1_000_000))
        made = (targets.create_database(base, name) for name in names)
        yield (url.replace("postgresql://", "postgresql+asyncpg://", 1) for url in made)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git revision whose claim to measure too")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--others", type=int, default=0, help="routes behind the backlog")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        cpu, server = child(args.child, args.others, args.database)
        print(json.dumps({"cpu_us": cpu, "server_us": server}))
        return 0
    with tempfile.TemporaryDirectory() as tmp, database_urls(args.engine) as urls:
        trees = {"this tree": ROOT}
        if args.against:
            trees[args.against] = tree_at(args.against, Path(tmp))
        figures: dict[str, dict[int, list[tuple[float, float]]]] = {
            n: {b: [] for b in BACKLOGS} for n in trees
        }
        for _ in range(args.repeat):  # interleaved, so load moves every tree's figures alike
            for backlog in BACKLOGS:
                for name, tree in trees.items():
                    url = next(urls)
                    figures[name][backlog].append(measure(tree, backlog, args.others, url))
    for name, by_backlog in figures.items():
        totals = {b: statistics.median(c + s for c, s in v) for b, v in by_backlog.items()}
        print(
            f"{name}, {args.engine}, {args.others} other routes: CPU per claim of 16"
            f" (median of {args.repeat}), and vs {BACKLOGS[0]}"
        )
        for backlog, values in by_backlog.items():
            client = statistics.median(c for c, _ in values)
            server = statistics.median(s for _, s in values)
            ratio = totals[backlog] / totals[BACKLOGS[0]]
            split = f" (this process {client:.0f} + server {server:.0f})" if server else ""
            print(f"  {backlog:>7,} due: {totals[backlog]:8.0f} us  {ratio:5.2f}x{split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
