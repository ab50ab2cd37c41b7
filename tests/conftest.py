"""Fixtures: a database per test (SQLite file, or a fresh database on a PostgreSQL cluster
the run starts itself), and an app driven through its HTTP interface."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy import select, text
from sqlmodel import col

from leads.app import create_app
from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.migrations import upgrade_to_head
from leads.storage.models import Enquiry, Lead
from tests.browsers import chromium
from tests.servers import postgres_cluster

SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with postgres_cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the test cluster, dropped after the test (a cluster left
    with hundreds of databases took half a minute to remove at the end of the run)."""
    name = f"t_{uuid.uuid4().hex[:16]}"

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(f"{postgres_server}/postgres")
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    # Its own loop in its own thread: fixtures are set up while the test loop runs.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run(f'CREATE DATABASE "{name}"')).result()
        yield f"{postgres_server}/{name}"
        pool.submit(asyncio.run, run(f'DROP DATABASE "{name}" WITH (FORCE)')).result()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    return str(request.getfixturevalue("postgres_url"))


def make_settings(database_url: str, **overrides: Any) -> Settings:
    # Rate limits off unless a test is about them: most tests submit many leads from one IP.
    # The tarpit too: it would hold every spam test's answer for a second.
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET,
        "rate_limit": "off",
        "tarpit_seconds": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def migrate(settings: Settings) -> None:
    database = Database.from_settings(settings)
    try:
        await upgrade_to_head(database)
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def serving_app(
    settings: Settings, *, http_transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Migrate, build the app, run its lifespan, and give an HTTP client for it."""
    await migrate(settings)
    app = create_app(settings, http_transport=http_transport)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url="http://testserver",
        ) as client,
    ):
        yield client


AppClient = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def make_client(database_url: str) -> AsyncIterator[AppClient]:
    """Build an app on the test's database with extra settings, and return an HTTP client
    for it; everything is torn down after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def build(**overrides: Any) -> httpx.AsyncClient:
            settings = make_settings(database_url, **overrides)
            return await stack.enter_async_context(serving_app(settings))

        yield build


@pytest.fixture
async def client(make_client: AppClient) -> httpx.AsyncClient:
    return await make_client()


@pytest.fixture
def lead() -> Callable[..., dict[str, Any]]:
    """A valid JSON submission; each call a different person unless told otherwise."""

    def build(**fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "Ada Lovelace",
            "email": f"ada.{uuid.uuid4().hex[:10]}@example.com",
            "consent": True,
        }
        body.update(fields)
        return body

    return build


Query = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def query(database_url: str) -> Query:
    """Read what is really stored, with plain SQL, on the test's database."""

    async def run(sql: str, **params: Any) -> list[dict[str, Any]]:
        database = Database.from_settings(make_settings(database_url))
        try:
            async with database.engine.begin() as conn:
                result = await conn.execute(text(sql), params)
                return [dict(row._mapping) for row in result] if result.returns_rows else []
        finally:
            await database.close()

    return run


LeadOf = Callable[[str], Awaitable[str]]


@pytest.fixture
def lead_of(database_url: str) -> LeadOf:
    """The id of the lead a receipt (the id a 201 gives) belongs to: visitors are told
    receipts, and tests that look at stored leads need the lead behind one."""

    async def find(receipt: str) -> str:
        database = Database.from_settings(make_settings(database_url))
        try:
            async with database.reading() as session:
                key = uuid.UUID(receipt)
                first = await session.scalar(select(Lead).where(col(Lead.receipt_id) == key))
                if first is not None:
                    return str(first.id)
                later = await session.get(Enquiry, key)
                assert later is not None, f"no submission has the receipt {receipt}"
                return str(later.lead_id)
        finally:
            await database.close()

    return find


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """What tests measured (``record_property("measured", ...)``), listed after the run:
    figures a reader should see, such as real visitors' p99 during an attack."""
    lines = [
        f"{report.nodeid.split('::')[-1]}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "measured"
    ]
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """A real Chromium for one test module's pages."""
    async with chromium() as launched:
        yield launched
