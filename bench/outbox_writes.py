"""What an outbox index costs the intake: CPU per outbox row written, with and without one.

    .venv/bin/python bench/outbox_writes.py                      # ix_outbox_route
    .venv/bin/python bench/outbox_writes.py --index ix_outbox_lead_id --repeat 7

Each lead's outbox rows are written in the intake's transaction, so every index on the
outbox is paid for by every batch of submissions. On a SQLite database built by this tree's
`leads migrate` (WAL, synchronous=FULL, as the app opens it) with 20,000 delivered rows
already in it, batches of 16 rows (8 leads' clinic email and webhook) are inserted with one
executemany and a commit each; the same on a copy without ``--index``, interleaved, and the
median over repeats of microseconds of process CPU (``time.process_time``: SQLite's work runs
in this process) per row is printed for both. fsync waits are not CPU and are left out. Not
a test: the machine is shared, so figures move with its load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BATCHES = 400
BATCH = 16
HISTORY = 20_000


def rows(columns: list[str], count: int, start: datetime) -> list[tuple[object, ...]]:
    made = []
    for i in range(count):
        at = (start + timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        webhook = i % 2 == 1
        values = {
            "id": uuid.uuid4().hex, "kind": "lead_created", "status": "pending",
            "channel": "webhook" if webhook else "smtp",
            "target": "https://hooks.example/lead" if webhook else None,
            "attempts": 0, "created_at": at, "scheduled_from": at, "next_attempt_at": at,
        }  # fmt: skip
        made.append(tuple(values.get(c) for c in columns))
    return made


def cpu_per_row(path: Path) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        db.execute(f"PRAGMA {pragma}")
    columns = [row[1] for row in db.execute("PRAGMA table_info(outbox)")]
    insert = f"INSERT INTO outbox ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})"  # noqa: S608 (our names)
    start = datetime.now(UTC)
    batches = [rows(columns, BATCH, start + timedelta(seconds=b)) for b in range(BATCHES)]
    began = time.process_time()
    for batch in batches:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(insert, batch)
        db.execute("COMMIT")
    spent = time.process_time() - began
    db.close()
    return spent / (BATCHES * BATCH) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="ix_outbox_route", help="the index to weigh")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        env = {**os.environ, "LEADS_DATABASE_URL": f"sqlite+aiosqlite:///{base}"}
        env["LEADS_SECRET_KEY"] = "x" * 32
        subprocess.run(
            [sys.executable, "-m", "leads", "migrate"], env=env, check=True, capture_output=True
        )
        db = sqlite3.connect(base)
        columns = [row[1] for row in db.execute("PRAGMA table_info(outbox)")]
        history = rows(columns, HISTORY, datetime(2026, 1, 1, tzinfo=UTC))
        marks = ",".join("?" * len(columns))
        db.executemany(f"INSERT INTO outbox VALUES ({marks})", history)  # noqa: S608
        db.execute("UPDATE outbox SET status = 'delivered'")
        db.commit()
        db.close()
        figures: dict[str, list[float]] = {"with": [], "without": []}
        for i in range(args.repeat):  # interleaved, so load moves both alike
            for name in figures:
                copy = Path(tmp) / f"{name}_{i}.db"
                shutil.copy(base, copy)
                if name == "without":
                    with sqlite3.connect(copy) as drop:
                        drop.execute(f"DROP INDEX {args.index}")
                figures[name].append(cpu_per_row(copy))
    with_, without = (statistics.median(v) for v in figures.values())
    print(f"CPU per outbox row written, batches of {BATCH}, median of {args.repeat}:")
    for name, median in (("with " + args.index, with_), ("without it", without)):
        each = ", ".join(f"{v:.1f}" for v in figures[name.split()[0]])
        print(f"  {name:<22} {median:6.1f} us  ({each})")
    print(f"  the index costs {with_ - without:+.1f} us per row ({with_ / without - 1:+.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
