"""The database connection: one engine per app, built from the settings.

SQLite runs in WAL mode with ``synchronous=FULL`` so an acknowledged lead survives a power
loss, and writes inside one process are serialised by a lock (SQLite has one writer at a
time; queueing in Python is cheaper and fairer than retrying on "database is locked").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)
from sqlalchemy.sql.dml import Insert

from leads.errors import StorageUnavailable
from leads.settings import Settings


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and other engines."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_engine(settings: Settings) -> AsyncEngine:
    timeout = settings.database_timeout_seconds
    if settings.is_sqlite:
        path = sqlite_path(settings.database_url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            settings.database_url, connect_args={"timeout": timeout}, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        settings.database_url,
        pool_pre_ping=True,
        hide_parameters=True,  # errors never carry a visitor's values into logs
        pool_timeout=timeout,
        connect_args={"timeout": timeout, "command_timeout": timeout * 2},
    )


def insert_unless_present(session: AsyncSession | str, table: Any, *, key: Sequence[str]) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` in the session's dialect (or the dialect
    named); the other dialect's module is never loaded (PostgreSQL's costs a SQLite server
    2 MB)."""
    dialect = session if isinstance(session, str) else session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=key)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=key)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


@dataclass
class Database:
    engine: AsyncEngine
    is_sqlite: bool
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(make_engine(settings), settings.is_sqlite)

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on any error, and any
        driver error translated to :class:`StorageUnavailable`."""
        lock = self._write_lock if self.is_sqlite else contextlib.nullcontext()
        async with lock:
            try:
                async with (
                    AsyncSession(self.engine, expire_on_commit=False) as session,
                    session.begin(),
                ):
                    yield session
            except IntegrityError:
                raise  # a constraint the use case expects to meet (a duplicate key, say)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:  # incl. the pool's timeout
                raise StorageUnavailable() from exc

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        try:
            async with AsyncSession(self.engine, expire_on_commit=False) as session:
                yield session
        except BrokenPipeError:
            raise  # the reader of our output went away (`leads export | head`): not ours
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StorageUnavailable() from exc

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
