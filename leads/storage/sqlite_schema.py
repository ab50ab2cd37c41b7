"""A new SQLite database gets, in one statement list, the schema Alembic would build.

Alembic stays the source of truth: ``sqlite_schema.sql`` beside this module is what
Alembic's own upgrade leaves in ``sqlite_master`` (and ``alembic_version``), written by
``python -m leads.storage.sqlite_schema`` and compared with a fresh upgrade by
``tests/test_migrations.py``. Replaying it costs a few milliseconds where the upgrade
itself, which rebuilds tables one by one in SQLite's batch mode, costs half a second and
Alembic's import. It is used only on a database with nothing in it yet, and only while the
revisions it records are the migrations' heads; anything else goes through Alembic.
"""

from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
from pathlib import Path

from sqlalchemy import Connection

from leads.storage.revisions import VERSION_TABLE

SNAPSHOT = Path(__file__).with_name("sqlite_schema.sql")
_REVISIONS = re.compile(r"^-- revisions: (.*)$", re.MULTILINE)
HEADER = """\
-- The schema Alembic builds on a new SQLite database, replayed as it is on one
-- (leads/storage/sqlite_schema.py). Written by `python -m leads.storage.sqlite_schema`
-- after a migration is added; do not edit.
"""


def snapshot_revisions(snapshot: str) -> frozenset[str]:
    found = _REVISIONS.search(snapshot)
    return frozenset(found.group(1).split()) if found else frozenset()


def statements(snapshot: str) -> list[str]:
    """The snapshot's statements, split where SQLite says one is complete."""
    done: list[str] = []
    pending = ""
    for line in snapshot.splitlines(keepends=True):
        if not pending and (not line.strip() or line.startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            done.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError("the schema snapshot ends inside a statement")
    return done


def is_empty(connection: Connection) -> bool:
    return connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar() == 0


def replay(connection: Connection, snapshot: str) -> None:
    """Build the snapshot's schema, inside the caller's transaction."""
    for statement in statements(snapshot):
        connection.exec_driver_sql(statement)


def dump(connection: Connection) -> str:
    """The snapshot of the schema the connection's database has: tables, then indexes, by
    name (Alembic's batch mode makes indexes in no fixed order), then triggers and views in
    the order SQLite made them; then ``alembic_version``'s rows.
    Refuses a database with rows anywhere else: a snapshot holds no data."""
    objects = connection.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT GLOB 'sqlite_*' "
        "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, "
        "CASE WHEN type IN ('table', 'index') THEN tbl_name || ' ' || name END, rowid"
    ).all()
    tables = [name for kind, name, _sql in objects if kind == "table" and name != VERSION_TABLE]
    for name in tables:  # names from sqlite_master, quoted
        if connection.exec_driver_sql(f'SELECT 1 FROM "{name}" LIMIT 1').first():  # noqa: S608
            raise ValueError(f"table {name} has rows: a schema snapshot holds none")
    found = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
    versions = sorted(str(version) for (version,) in found)
    lines = [HEADER, f"-- revisions: {' '.join(versions)}\n"]
    lines += [f"\n{sql};\n" for _kind, _name, sql in objects]
    lines += [f"\nINSERT INTO {VERSION_TABLE} (version_num) VALUES ('{v}');\n" for v in versions]
    return "".join(lines)


def built_by_alembic() -> str:
    """Upgrade a new temporary SQLite database with Alembic and dump it."""
    import asyncio

    from leads.settings import Settings
    from leads.storage.database import Database
    from leads.storage.migrations import upgrade_with_alembic

    async def build(url: str) -> str:
        database = Database.from_settings(Settings(_env_file=None, database_url=url))
        try:
            async with database.engine.connect() as conn:
                await conn.run_sync(upgrade_with_alembic)
                return await conn.run_sync(dump)
        finally:
            await database.close()

    with tempfile.TemporaryDirectory(prefix="leads-schema-") as workdir:
        return asyncio.run(build(f"sqlite+aiosqlite:///{workdir}/leads.db"))


def main() -> int:
    SNAPSHOT.write_text(built_by_alembic(), encoding="utf-8")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
