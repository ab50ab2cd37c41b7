"""Bring a database's schema up to date with Alembic.

Several processes may start at once (``leads serve --workers 4``, or several containers on
one PostgreSQL): on PostgreSQL a session-level advisory lock makes them migrate one after
the other, and the later ones find nothing left to do. On SQLite the first statement of the
migration takes the write lock, which has the same effect.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

import leads
from alembic import command
from leads.storage.database import Database

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
    try:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
    finally:
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
