"""CPU per outbox claim as the backlog grows: what a dispatcher pays to take its next few
messages when thousands are waiting (a burst, or a channel that was down).

    .venv/bin/python bench/claims.py                     # this tree
    .venv/bin/python bench/claims.py --against 54e6d36   # and the code at a git revision

For each backlog size a fresh SQLite database (built by that tree's `leads migrate`) gets
that many pending, due messages; then claims of 16 (as the dispatcher makes, slots of 8 per
route) are made and given back, again and again, so the backlog stays the same size.
Prints the median over repeats of microseconds of process CPU (``time.process_time``) per
claim, and each size's ratio to the smallest backlog's in the same run: a claim that seeks
stays near 1x, one that sorts the backlog grows with it. Not a test: the machine is
shared, so figures move with its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKLOGS = (100, 1_000, 10_000, 50_000)
DELIVERED = 20_000  # history beside the backlog, as a working outbox has
CLAIMS = 200


def fill(path: Path, pending: int) -> None:
    """``pending`` due messages and some delivered history, written straight to the table."""
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(outbox)")]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(DELIVERED + pending):
        at = (start + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        status = "delivered" if i < DELIVERED else "pending"
        values = {
            "id": uuid.uuid4().hex, "kind": "lead_created", "channel": "smtp",
            "status": status, "attempts": 0 if status == "pending" else 1,
            "created_at": at, "scheduled_from": at, "next_attempt_at": at,
        }  # fmt: skip
        rows.append(tuple(values.get(c) for c in columns))
    marks = ",".join("?" * len(columns))
    insert = f"INSERT INTO outbox ({','.join(columns)}) VALUES ({marks})"  # noqa: S608 (our names)
    db.executemany(insert, rows)
    db.commit()
    db.close()


async def claim_cpu(url: str) -> float:
    """Microseconds of CPU per claim of 16 (the claim and its release)."""
    from leads.settings import Settings
    from leads.storage import outbox
    from leads.storage.database import Database

    database = Database.from_settings(Settings(database_url=url, secret_key="x" * 32))
    try:
        began = time.process_time()
        for _ in range(CLAIMS):
            now = datetime.now(UTC)
            async with database.writing() as session:
                claimed = await outbox.claim_due(
                    session=session, worker="bench", now=now,
                    lease_until=now + timedelta(minutes=5), limit=16, per_route=8,
                )  # fmt: skip
                assert claimed, "nothing claimed"
                ids = [m.id for m in claimed]
                await outbox.release_claims(session=session, ids=ids, worker="bench")
        return (time.process_time() - began) / CLAIMS * 1e6
    finally:
        await database.close()


def child(pending: int) -> float:
    """One measure in this process, on the tree ``leads`` is imported from."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "claims.db"
        url = f"sqlite+aiosqlite:///{path}"
        env = {**os.environ, "LEADS_DATABASE_URL": url, "LEADS_SECRET_KEY": "x" * 32}
        subprocess.run(
            [sys.executable, "-m", "leads", "migrate"], env=env, check=True, capture_output=True
        )
        fill(path, pending)
        return asyncio.run(claim_cpu(url))


def tree_at(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision, "leads", "alembic"], cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "leads" / "_migrations").symlink_to(into / "alembic")
    return into


def measure(tree: Path, pending: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(pending)],
        env=env, cwd=tree, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(json.loads(out.stdout)["cpu_us"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git revision whose claim to measure too")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps({"cpu_us": child(args.child)}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            trees[args.against] = tree_at(args.against, Path(tmp))
        figures: dict[str, dict[int, list[float]]] = {n: {b: [] for b in BACKLOGS} for n in trees}
        for _ in range(args.repeat):  # interleaved, so load moves every tree's figures alike
            for backlog in BACKLOGS:
                for name, tree in trees.items():
                    figures[name][backlog].append(measure(tree, backlog))
    for name, by_backlog in figures.items():
        base = statistics.median(by_backlog[BACKLOGS[0]])
        print(f"{name}: CPU per claim of 16 (median of {args.repeat}), and vs {BACKLOGS[0]}")
        for backlog, values in by_backlog.items():
            median = statistics.median(values)
            print(f"  {backlog:>7,} due: {median:8.0f} us  {median / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
