"""Bring a database's schema up to date with Alembic.

Several processes may start at once (``leads serve --workers 4``, or several containers on
one PostgreSQL): on PostgreSQL a session-level advisory lock makes them migrate one after
the other, and the later ones find nothing left to do. On SQLite the upgrade runs in one
``BEGIN IMMEDIATE`` transaction, whose write lock has the same effect.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

import leads
from alembic import command
from leads.errors import DatabaseNotReady
from leads.storage.database import Database, sqlite_path

# An arbitrary constant naming "leads schema migration" among advisory locks.
MIGRATION_LOCK_ID = 0x1EAD5


def migrations_dir() -> Path:
    package = Path(leads.__file__).parent
    for candidate in (package / "_migrations", package.parent / "alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("the alembic migrations are not installed beside the package")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


async def upgrade_to_head(database: Database) -> None:
    async with database.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()


def _upgrade(connection: Connection) -> None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
    else:
        # The sqlite3 driver runs DDL outside any transaction, so two processes migrating one
        # new file would both create the tables. Take the write lock first and keep the whole
        # upgrade in that one transaction (alembic then leaves transactions to us).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
    finally:
        if connection.in_transaction():
            # A failed upgrade: end its transaction, or PostgreSQL refuses the unlock below
            # and its "transaction is aborted" error would hide the real one.
            connection.rollback()
        if postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()


async def pending_revisions(database: Database) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""
    script = ScriptDirectory.from_config(alembic_config())
    async with database.engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_heads())
    heads = set(script.get_heads())
    if heads <= set(current):
        return []
    return [rev.revision for rev in script.iterate_revisions("heads", current or "base")]


def require_existing(url: str, shown: str) -> None:
    """Refuse before connecting when a SQLite file is missing: connecting would create it."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseNotReady(
            f"there is no database at {shown} yet: run `leads migrate` (or `leads serve`) first"
        )


async def require_current(database: Database, shown: str) -> None:
    """Refuse to work on a database whose schema is behind: say so, and what fixes it."""
    pending = await pending_revisions(database)
    if pending:
        raise DatabaseNotReady(
            f"the database at {shown} is not set up for this version of leads "
            f"({len(pending)} migration(s) pending): run `leads migrate` first"
        )
