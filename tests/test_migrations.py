"""The migrations build exactly the models' schema, once, however many processes start at
once, and they ship inside the wheel."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Integer, MetaData, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from alembic import command
from leads.storage import sqlite_schema
from leads.storage.database import Database
from leads.storage.migrations import (
    MIGRATION_LOCK_ID,
    alembic_config,
    pending_revisions,
    upgrade_to_head,
)
from leads.storage.models import IdempotencyRecord  # also registers every table
from tests.conftest import SECRET, make_settings, migrate
from tests.support import LEADS, leads_env, run_leads

ROOT = Path(__file__).resolve().parent.parent


def schema_diff(connection: Connection, metadata: MetaData | None = None) -> list[Any]:
    """What autogenerate would write to bring the database to the models: empty when equal."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata or SQLModel.metadata))


def schema_snapshot(connection: Connection) -> dict[str, Any]:
    """Tables with their columns, indexes and foreign keys, as plain comparable data."""
    inspector = inspect(connection)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)
            ),
            "foreign_keys": [
                (fk["constrained_columns"], fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ],
        }
        for table in sorted(inspector.get_table_names())
    }


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


async def inspect_database(database_url: str, look: Any) -> Any:
    database = Database.from_settings(make_settings(database_url))
    try:
        async with database.engine.connect() as conn:
            return await conn.run_sync(look)
    finally:
        await database.close()


def plain_url(database_url: str) -> str:
    return database_url.replace("+aiosqlite", "").replace("+asyncpg", "")


async def test_migrations_build_the_models_schema(database_url: str) -> None:
    await migrate(make_settings(database_url))

    def look(conn: Connection) -> dict[str, Any]:
        found: dict[str, Any] = {"diff": schema_diff(conn)}
        found["version"] = MigrationContext.configure(conn).get_current_heads()
        if conn.dialect.name == "sqlite":
            found["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            found["foreign_keys"] = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        return found

    found = await inspect_database(database_url, look)
    assert found["diff"] == []
    assert set(found["version"]) == head_revisions()
    if database_url.startswith("sqlite"):
        assert found["journal_mode"] == "wal"
        assert found["foreign_keys"] == 1
        # WAL is a property of the file, not only of our connections.
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as plain:
            assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        plain.close()


def test_the_sqlite_snapshot_is_the_schema_alembic_builds(tmp_path: Path) -> None:
    """A new SQLite database is built from the snapshot: it must be Alembic's schema, exactly
    (every table, index and constraint as SQLite stores it, and the revision)."""
    by_alembic = sqlite_schema.built_by_alembic()
    assert sqlite_schema.SNAPSHOT.read_text(encoding="utf-8") == by_alembic, (
        "a migration changed the schema: run `python -m leads.storage.sqlite_schema`"
    )
    assert sqlite_schema.snapshot_revisions(by_alembic) == head_revisions()

    url = f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    asyncio.run(migrate(make_settings(url)))
    assert asyncio.run(inspect_database(url, sqlite_schema.dump)) == by_alembic


async def test_a_database_behind_is_brought_to_head(database_url: str) -> None:
    """A database one migration behind: the pending one counted as Alembic counts it, and
    applied by Alembic."""
    script = ScriptDirectory.from_config(alembic_config())
    (head,) = script.get_heads()
    before = script.get_revision(head).down_revision
    assert isinstance(before, str)

    def upgrade_to_before(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, before)

    await inspect_database(database_url, upgrade_to_before)
    database = Database.from_settings(make_settings(database_url))
    try:
        assert await pending_revisions(database) == [head]
        await upgrade_to_head(database)
        assert await pending_revisions(database) == []
    finally:
        await database.close()

    def look(conn: Connection) -> tuple[list[Any], tuple[str, ...]]:
        return schema_diff(conn), MigrationContext.configure(conn).get_current_heads()

    assert await inspect_database(database_url, look) == ([], (head,))


async def test_the_schema_comparison_notices_a_difference(tmp_path: Path) -> None:
    """Guards the test above against comparing nothing."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    await migrate(make_settings(url))
    drifted = MetaData()
    for table in SQLModel.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["leads"].append_column(Column("shoe_size", Integer, nullable=True))

    diff = await inspect_database(url, lambda conn: schema_diff(conn, drifted))
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "shoe_size")]


def test_migrate_twice_is_a_no_op(database_url: str, tmp_path: Path) -> None:
    env = leads_env(database_url=plain_url(database_url), secret_key=SECRET)
    first = run_leads("migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    asyncio.run(_insert_marker(database_url))
    before = asyncio.run(inspect_database(database_url, schema_snapshot))

    second = run_leads("migrate", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout == "database schema is up to date\n"
    after = asyncio.run(inspect_database(database_url, schema_snapshot))
    assert after == before
    assert "leads" in after

    def rows(conn: Connection) -> tuple[list[Any], list[Any]]:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        keys = conn.execute(text("SELECT key FROM idempotency_keys")).all()
        return [tuple(v) for v in versions], [tuple(k) for k in keys]

    versions, keys = asyncio.run(inspect_database(database_url, rows))
    assert {v for (v,) in versions} == head_revisions()
    assert len(versions) == len(head_revisions())
    assert keys == [("marker",)]


async def _insert_marker(database_url: str) -> None:
    database = Database.from_settings(make_settings(database_url))
    try:
        async with database.writing() as session:
            session.add(IdempotencyRecord(key="marker", lead_id=uuid.uuid4()))
    finally:
        await database.close()


@pytest.mark.slow
def test_processes_migrating_at_once_all_succeed(database_url: str, tmp_path: Path) -> None:
    env = leads_env(database_url=plain_url(database_url), secret_key=SECRET)
    processes = [
        subprocess.Popen(
            [*LEADS, "migrate"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = []
    for process in processes:
        with process:
            out, err = process.communicate(timeout=90)
            outcomes.append((process.returncode, out, err))
    assert outcomes == [(0, "database schema is up to date\n", "")] * 3

    def look(conn: Connection) -> tuple[list[Any], tuple[str, ...]]:
        return schema_diff(conn), MigrationContext.configure(conn).get_current_heads()

    diff, version = asyncio.run(inspect_database(database_url, look))
    assert diff == []
    assert sorted(version) == sorted(head_revisions())


@pytest.mark.postgres
async def test_migration_waits_for_the_advisory_lock(postgres_url: str) -> None:
    admin = await asyncpg.connect(postgres_url)
    await admin.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    upgrade = asyncio.create_task(migrate(make_settings(postgres_url)))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        waiting = 0
        while not waiting:
            # A bigint advisory lock appears as classid = high half, objid = low half.
            waiting = await admin.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = $1 AND classid = 0",
                MIGRATION_LOCK_ID,
            )
            assert not upgrade.done(), upgrade
            assert loop.time() < deadline, "the migration never asked for the lock"
            await asyncio.sleep(0.02)
        tables = await admin.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname='public'")
        assert tables == 0
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    await asyncio.wait_for(upgrade, timeout=30)
    assert await admin.fetchval("SELECT version_num FROM alembic_version") in head_revisions()
    await admin.close()


async def test_a_failed_migration_raises_its_own_error_and_leaves_nothing(
    database_url: str,
) -> None:
    """All or nothing on both engines; on PostgreSQL the lock is released even on failure."""
    settings = make_settings(database_url)
    database = Database.from_settings(settings)
    try:
        async with database.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE leads (id INTEGER PRIMARY KEY)"))
        with pytest.raises(DBAPIError, match="already exists"):
            await upgrade_to_head(database)
        async with database.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sorted(inspect(c).get_table_names()))
        assert tables == ["leads"]
        if not settings.is_sqlite:
            other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
            try:
                assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_ID)
            finally:
                await other.close()
    finally:
        await database.close()


def test_the_wheel_carries_its_migrations(tmp_path: Path) -> None:
    uv = Path(sys.executable).parent / "uv"
    if uv.exists():
        build = [str(uv), "build", "--wheel", "--quiet", "-o", str(tmp_path / "dist"), str(ROOT)]
    else:
        build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "dist")]
        build.append(str(ROOT))
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    (wheel,) = (tmp_path / "dist").glob("leads-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert "leads/_migrations/env.py" in names
    shipped = {n for n in names if n.startswith("leads/_migrations/versions/")}
    in_repo = {
        f"leads/_migrations/versions/{p.name}" for p in (ROOT / "alembic/versions").glob("*.py")
    }
    assert any(Path(n).name.startswith("0001_") for n in shipped)
    assert shipped == in_repo

    # Installed from the wheel (and run away from the repository), `leads migrate` finds them.
    site = tmp_path / "site"
    env = leads_env(database_url=f"sqlite:///{tmp_path / 'leads.db'}", secret_key=SECRET)
    env["PYTHONPATH"] = str(site)
    probe = (
        "import sys; from leads.storage.migrations import migrations_dir; "
        "from leads.cli import main; print(migrations_dir()); sys.exit(main(['migrate']))"
    )
    result = run_leads("-c", probe, env=env, cwd=tmp_path, command=(sys.executable,))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(site / "leads" / "_migrations"),
        "database schema is up to date",
    ]
    with sqlite3.connect(tmp_path / "leads.db") as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"leads", "enquiries", "idempotency_keys", "alembic_version"} <= tables


def _to_revision(connection: Connection, revision: str, *, down: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)
    connection.commit()


async def test_the_staff_list_indexes_go_down_and_up_again(database_url: str) -> None:
    """0009 only adds indexes: down to 0008 they are gone and the tables are as they were;
    up again the schema is the models' once more."""
    staff_indexes = {"ix_leads_listed", "ix_leads_duplicate_of", "ix_leads_merged_into"}
    await migrate(make_settings(database_url))

    def lead_indexes(conn: Connection) -> set[str]:
        return {str(i["name"]) for i in inspect(conn).get_indexes("leads")}

    def down(conn: Connection) -> tuple[set[str], list[str], tuple[str, ...]]:
        before = lead_indexes(conn)
        _to_revision(conn, "0008", down=True)
        version = MigrationContext.configure(conn).get_current_heads()
        return before, sorted(lead_indexes(conn)), version

    before, after_down, version = await inspect_database(database_url, down)
    assert staff_indexes <= before
    assert version == ("0008",)
    assert not staff_indexes & set(after_down)
    assert {"ix_leads_created_at", "ix_leads_open_email", "ix_leads_receipt_id"} <= set(after_down)

    def up(conn: Connection) -> tuple[list[Any], set[str]]:
        _to_revision(conn, "head", down=False)
        return schema_diff(conn), lead_indexes(conn)

    diff, after_up = await inspect_database(database_url, up)
    assert diff == []
    assert staff_indexes <= after_up
