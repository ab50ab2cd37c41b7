"""What a server loads to start: what its requests do not need stays unloaded. Each check
runs in a new `python` process (this one has loaded everything long ago) that starts the
way `leads serve` does: `leads migrate`'s path, then the app factory and its lifespan."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import SECRET
from tests.support import leads_env, run_leads

# Run as `python -c`: migrate, build the app from the environment, run its lifespan, answer
# /healthz and two submissions (a US and a UK number) through plain ASGI calls, then say
# which modules are loaded.
PROBE = """
import asyncio, json, sys
from leads.app import app_from_environment
from leads.cli import main

assert main(["migrate"]) == 0
app = app_from_environment()

async def call(method, path, body=b""):  # plain ASGI: an HTTP client would load its own code
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"user-agent", b"probe")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    async def receive():
        return messages.pop() if messages else {"type": "http.disconnect"}
    status = []
    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
    await app(scope, receive, send)
    return status[0]

async def visit():
    async with app.router.lifespan_context(app):
        answers = [await call("GET", "/healthz")]
        for n, phone in enumerate(("+1 212 200 0001", "+44 20 7946 0958")):
            lead = {"name": "Ann Lee", "email": f"ann{n}@example.com", "phone": phone,
                    "consent": True, "message": "Is dry needling right for my back?"}
            answers.append(await call("POST", "/api/leads", json.dumps(lead).encode()))
        return answers

answers = asyncio.run(visit())
print(json.dumps({"answers": answers, "modules": sorted(sys.modules)}))
"""

NOT_NEEDED_ON_SQLITE = (
    "alembic",  # the schema is current (or new: replayed from Alembic's snapshot)
    "mako",  # Alembic's templates
    "asyncpg",  # PostgreSQL's driver
    "sqlalchemy.dialects.postgresql",
    "phonenumbers.geocoder",  # place names, carriers and time zones: every region's data
    "phonenumbers.carrier",
    "phonenumbers.timezone",
    "httpx",  # nothing is sent over HTTP: the log channel, no email API, webhook or captcha
)


def start(tmp_path: Path) -> dict[str, Any]:
    env = leads_env(
        database_url=f"sqlite:///{tmp_path / 'leads.db'}",
        secret_key=SECRET,
        rate_limit="off",
        default_region="GB",
    )
    result = run_leads("-c", PROBE, env=env, cwd=tmp_path, command=(sys.executable,))
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return found


def test_a_sqlite_server_loads_no_migration_tool_nor_postgresql_code(tmp_path: Path) -> None:
    for database in ("new", "current"):
        found = start(tmp_path)
        assert found["answers"] == [200, 201, 201], database
        loaded = set(found["modules"])
        assert {"leads.storage.models", "phonenumbers"} <= loaded  # the probe saw the app
        assert [m for m in NOT_NEEDED_ON_SQLITE if m in loaded] == [], database


def test_phone_metadata_is_loaded_only_for_the_regions_in_use(tmp_path: Path) -> None:
    """The default region (GB) and the country of each number seen (US, GB): no other."""
    prefix = "phonenumbers.data.region_"
    found = start(tmp_path)
    regions = {m.removeprefix(prefix) for m in found["modules"] if m.startswith(prefix)}
    assert regions == {"GB", "US"}
