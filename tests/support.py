"""Helpers the test modules share, so that none imports another: waiting for something
observable, running the `leads` command, and reading the outbox. (Fixtures are in
conftest.py; real servers in servers.py and mail.py; the fake clock in clock.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

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
