"""Helpers the test modules share, so that none imports another: waiting for something
observable, running the `leads` command, reading the outbox, and dispatchers on a clock the
test moves. (Fixtures are in conftest.py; real servers in servers.py, mail.py and
receivers.py; the defences' fake clock in clock.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from leads.core.forms import load_forms
from leads.notify.dispatcher import Dispatcher
from leads.settings import Settings
from leads.storage.database import Database
from tests.conftest import SECRET, Query

T = TypeVar("T")

LEADS = (sys.executable, "-m", "leads")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 30,
    every: float = 0.02,
    what: str = "the condition",
) -> T:
    """Ask ``probe`` until it answers something other than None (or False); give that back.
    Fails after ``within`` seconds, saying ``what`` never came: generous, since a busy
    machine is slow, and it costs nothing when things go well."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(every)


def leads_env(**settings: str) -> dict[str, str]:
    """A subprocess environment: ours without any LEADS_* variable, plus ``settings``
    (``database_url="..."`` becomes ``LEADS_DATABASE_URL``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADS_")}
    env.update({f"LEADS_{name.upper()}": value for name, value in settings.items()})
    return env


def run_leads(
    *args: str,
    env: dict[str, str],
    cwd: Path | None = None,
    command: tuple[str, ...] = LEADS,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the `leads` command to completion (in ``cwd``: a directory with no ``.env``),
    with ``stdin`` piped to it (else this process's standard input)."""
    return subprocess.run(
        [*command, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def leads_cli(
    database_url: str, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`leads ARGS` against the test's database, as an operator runs it (extra LEADS_*
    variables by their full names; ``stdin`` piped in, as a script would)."""
    base = leads_env(database_url=database_url, secret_key=SECRET)
    return run_leads(
        *args, env={**base, **env}, cwd=Path(__file__).parent, stdin=stdin
    )  # no .env here


async def outbox_rows(
    query: Query, *, until: str, count: int = 1, within: float = 30
) -> list[dict[str, Any]]:
    """The outbox, once ``count`` of its rows have status ``until``."""

    async def probe() -> list[dict[str, Any]] | None:
        rows = await query("SELECT * FROM outbox ORDER BY created_at")
        return rows if sum(r["status"] == until for r in rows) >= count else None

    return await eventually(probe, within=within, what=f"{count} outbox row(s) {until}")


class TurnClock:
    """A dispatcher's clock: stands at the moment the test puts it, and counts its reads
    (each dispatcher turn reads it at least once), so a test can wait for turns to pass."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.moment

    async def turns(self, count: int) -> None:
        """Wait until the clock has been read ``count`` more times."""
        goal = self.reads + count

        async def enough() -> bool:
            return self.reads >= goal

        await eventually(enough, what=f"{count} clock reads")

    async def advance(self, seconds: float, *, turns: int = 20) -> None:
        """Move on, and let the dispatchers turn."""
        self.moment += timedelta(seconds=seconds)
        await self.turns(turns)


@contextlib.asynccontextmanager
async def dispatchers(
    settings: Settings, clock: Callable[[], datetime], count: int = 1
) -> AsyncIterator[None]:
    """``count`` dispatchers on ``clock``, each with its own database engine (as separate
    servers have), with the forms file as it reads now; stopped at the end."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient())
        forms = load_forms(settings.forms_file)
        for _ in range(count):
            database = Database.from_settings(settings)
            stack.push_async_callback(database.close)
            dispatcher = Dispatcher(settings, database, forms, http, poll_seconds=0.02, clock=clock)
            dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
        yield
