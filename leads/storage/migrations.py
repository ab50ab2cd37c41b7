"""Bring a database's schema up to date with Alembic, loading Alembic only when there is
something to do.

A server that starts on a database already at the head reads ``alembic_version`` and the
migrations' revision lines (:mod:`leads.storage.revisions`) and goes on. A new, empty
SQLite database gets the schema Alembic builds, replayed from the snapshot Alembic wrote
(:mod:`leads.storage.sqlite_schema`). Anything else (a database behind, PostgreSQL's first
start, a revision the graph does not know) is Alembic's upgrade, as ``leads migrate`` has
always run it.

Several processes may start at once (``leads serve --workers 4``, or several containers on
one PostgreSQL): on PostgreSQL a session-level advisory lock makes them migrate one after
the other, and the later ones find nothing left to do. On SQLite the upgrade runs in one
``BEGIN IMMEDIATE`` transaction, whose write lock has the same effect.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

import leads
from leads.errors import DatabaseNotReady
from leads.storage import sqlite_schema
from leads.storage.database import Database, sqlite_path
from leads.storage.revisions import NotSure, RevisionGraph, current_revisions

if TYPE_CHECKING:
    from alembic.config import Config

# An arbitrary constant naming "leads schema migration" among advisory locks.
MIGRATION_LOCK_ID = 0x1EAD5


def migrations_dir() -> Path:
    package = Path(leads.__file__).parent
    for candidate in (package / "_migrations", package.parent / "alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("the alembic migrations are not installed beside the package")


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def revision_graph() -> RevisionGraph | None:
    """The migrations' graph, or None when it cannot be read without Alembic."""
    try:
        return RevisionGraph.read(migrations_dir() / "versions")
    except NotSure:
        return None


async def upgrade_to_head(database: Database) -> None:
    async with database.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()


def _upgrade(connection: Connection) -> None:
    graph = revision_graph()
    if graph is not None and _is_current(graph, connection):
        return
    connection.rollback()  # end the read before taking the lock
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
        if graph is not None and _is_current(graph, connection):
            pass  # another process migrated it while this one waited for the lock
        elif postgres or not _replayed_snapshot(graph, connection):
            upgrade_with_alembic(connection)
        connection.commit()
    finally:
        if connection.in_transaction():
            # A failed upgrade: end its transaction, or PostgreSQL refuses the unlock below
            # and its "transaction is aborted" error would hide the real one.
            connection.rollback()
        if postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()


def _is_current(graph: RevisionGraph, connection: Connection) -> bool:
    try:
        return not graph.pending(current_revisions(connection))
    except NotSure:
        return False


def _replayed_snapshot(graph: RevisionGraph | None, connection: Connection) -> bool:
    """On a SQLite database with nothing in it (checked under the write lock), build the
    schema from Alembic's snapshot when it is of the migrations' heads; True if it did."""
    if graph is None or not sqlite_schema.is_empty(connection):
        return False
    snapshot = sqlite_schema.SNAPSHOT.read_text(encoding="utf-8")
    if sqlite_schema.snapshot_revisions(snapshot) != graph.heads():
        return False  # a migration newer than the snapshot: Alembic builds it
    sqlite_schema.replay(connection, snapshot)
    return True


def upgrade_with_alembic(connection: Connection) -> None:
    """Alembic's upgrade to head on ``connection``, in the caller's transaction."""
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    # Alembic's run leaves thousands of objects in cycles; `leads serve` freezes its heap
    # for the collector soon after (leads/app.py), which would keep them for good.
    gc.collect()


async def pending_revisions(database: Database) -> list[str]:
    """Revisions not yet applied (empty when the schema is current)."""
    async with database.engine.connect() as conn:
        current = await conn.run_sync(current_revisions)
    graph = revision_graph()
    if graph is not None:
        try:
            return graph.pending(current)
        except NotSure:
            pass
    return _pending_by_alembic(current)


def _pending_by_alembic(current: tuple[str, ...]) -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    if set(script.get_heads()) <= set(current):
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
