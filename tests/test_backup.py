"""`leads backup PATH`: a consistent copy of a SQLite database that is taking submissions,
with its generated key, that restores as docs/operations.md says."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import stat
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings, migrate
from tests.servers import leads_process
from tests.support import leads_env, run_leads


def sqlite_env(database: Path) -> dict[str, str]:
    # No LEADS_SECRET_KEY: the service generates its key file beside the database.
    return leads_env(
        database_url=f"sqlite+aiosqlite:///{database}",
        rate_limit="off",
        tarpit_seconds="0",
        log_level="warning",
    )


def receipts_in(database: Path) -> set[str]:
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as conn:
        return {uuid.UUID(str(row[0])).hex for row in conn.execute("SELECT receipt_id FROM leads")}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
async def test_backup_while_serving_holds_every_acknowledged_lead_and_restores(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live" / "leads.db"
    live.parent.mkdir()
    copy = tmp_path / "backups" / "leads-today.db"
    copy.parent.mkdir()
    env = sqlite_env(live)
    acknowledged: list[tuple[float, str]] = []  # (when the 201 arrived, its receipt)
    stop, some_stored = asyncio.Event(), asyncio.Event()

    with leads_process(env) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:

            async def submit_until_stopped(sender: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    body = {"name": "Ada", "email": f"s{sender}n{n}@example.com", "consent": True}
                    response = await client.post("/api/leads", json=body)
                    assert response.status_code == 201, response.text
                    acknowledged.append((time.monotonic(), uuid.UUID(response.json()["id"]).hex))
                    if len(acknowledged) >= 40:  # the database has some leads before the backup
                        some_stored.set()

            senders = [asyncio.create_task(submit_until_stopped(s)) for s in range(4)]
            await asyncio.wait_for(some_stored.wait(), 30)
            started = time.monotonic()
            before = {receipt for at, receipt in acknowledged if at <= started}
            result = await asyncio.to_thread(run_leads, "backup", str(copy), env=env, cwd=tmp_path)
            finished = time.monotonic()
            stop.set()
            await asyncio.gather(*senders)
    assert result.returncode == 0, result.stderr
    # The service kept answering while the command ran.
    assert any(started < at < finished for at, _ in acknowledged)

    key_file = live.with_name("leads.db.secret")
    key_copy = copy.with_name("leads-today.db.secret")
    assert result.stdout.splitlines() == [
        f"backed up {live} to {copy} ({copy.stat().st_size} bytes)",
        f"copied the secret key to {key_copy}: keep it with the backup",
    ]
    assert mode_of(copy) == 0o600
    assert mode_of(key_copy) == 0o600
    assert key_copy.read_text() == key_file.read_text()
    assert sorted(p.name for p in copy.parent.iterdir()) == ["leads-today.db", key_copy.name]
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert before <= receipts_in(copy)

    # Restored as the docs say: the copy becomes leads.db, its key leads.db.secret.
    restored = tmp_path / "restored" / "leads.db"
    restored.parent.mkdir()
    shutil.copy(copy, restored)
    shutil.copy(key_copy, restored.with_name("leads.db.secret"))
    restored_env = sqlite_env(restored)
    checked = run_leads("check", env=restored_env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "database: reachable; schema current" in checked.stdout
    assert f"(not set; using the generated key in {restored.with_name('leads.db.secret')})" in (
        checked.stdout
    )
    exported = run_leads("export", env=restored_env, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert before <= {uuid.UUID(row["enquiry_ids"][0]).hex for row in rows}
    assert len(rows) == len(receipts_in(copy))

    audit = run_leads("audit", "export", env=env, cwd=tmp_path)
    [entry] = [e for e in map(json.loads, audit.stdout.splitlines()) if e["action"] == "backup"]
    assert entry["actor"] == "cli"
    assert entry["detail"] == {"path": str(copy), "bytes": copy.stat().st_size}


def make_database(tmp_path: Path) -> dict[str, str]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    asyncio.run(migrate(make_settings(database_url)))
    return sqlite_env(tmp_path / "leads.db")


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    env = make_database(tmp_path)
    target = tmp_path / "backup.db"
    target.write_text("an older backup")

    refused = run_leads("backup", str(target), env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"leads: error: {target} exists: choose another name, or use --force to replace it"
    ]
    assert target.read_text() == "an older backup"

    forced = run_leads("backup", "--force", str(target), env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert mode_of(target) == 0o600
    # Nothing left behind: no temporary file, no -wal beside the copy.
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".backup.db", "backup.db-"))]


def test_a_set_secret_key_is_not_copied_but_recalled(tmp_path: Path) -> None:
    env = {**make_database(tmp_path), "LEADS_SECRET_KEY": "a-key-from-the-secret-store-0123"}
    target = tmp_path / "backup.db"
    done = run_leads("backup", str(target), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "LEADS_SECRET_KEY is not in the backup: keep it in your secret store"
    )
    assert not target.with_name("backup.db.secret").exists()


def test_no_database_no_backup(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path / "missing.db")
    target = tmp_path / "backup.db"
    result = run_leads("backup", str(target), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("leads: error:")
    assert not target.exists()
    assert not (tmp_path / "missing.db").exists()


def test_a_directory_that_is_not_there_is_named(tmp_path: Path) -> None:
    env = make_database(tmp_path)
    result = run_leads("backup", str(tmp_path / "nowhere" / "b.db"), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"leads: error: {tmp_path / 'nowhere'} does not exist: create the directory first"
    ]


def test_postgresql_is_pointed_to_pg_dump(tmp_path: Path) -> None:
    env = leads_env(database_url="postgresql://leads@127.0.0.1:1/leads", secret_key="x" * 32)
    result = run_leads("backup", str(tmp_path / "b.db"), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "leads: error: leads backup copies SQLite databases; on PostgreSQL use pg_dump "
        "(docs/operations.md, Backups and restore)"
    ]
    assert not (tmp_path / "b.db").exists()
