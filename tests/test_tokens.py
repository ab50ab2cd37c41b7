"""`leads token create|list|revoke` as an operator runs them; what the tokens open is in
the staff API's tests."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Query, make_settings, migrate
from tests.support import leads_cli

pytestmark = pytest.mark.slow


async def test_a_token_is_printed_once_and_only_its_digest_is_kept(
    database_url: str, query: Query
) -> None:
    await migrate(make_settings(database_url))
    made = leads_cli(database_url, "token", "create", "--name", "crm-sync", "--scope", "write")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("leads_")
    assert len(token) > 40
    rows = await query("SELECT name, scope, token_hash, last_used_at FROM api_tokens")
    assert [(r["name"], r["scope"], r["last_used_at"]) for r in rows] == [
        ("crm-sync", "write", None)
    ]
    assert token not in json.dumps(rows, default=str)  # the digest, never the token

    listed = leads_cli(database_url, "token", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split("\t") == ["name", "scope", "created", "last used"]
    name, scope, _created, used = listed.stdout.splitlines()[1].split("\t")
    assert (name, scope, used) == ("crm-sync", "write", "never")
    assert token not in listed.stdout


async def test_names_are_unique_and_a_revoked_token_is_gone(
    database_url: str, query: Query
) -> None:
    await migrate(make_settings(database_url))
    assert leads_cli(database_url, "token", "create", "--name", "reports").returncode == 0
    again = leads_cli(database_url, "token", "create", "--name", "reports")
    assert again.returncode == 2
    assert again.stderr.strip() == "leads: error: there is already a token named 'reports'"
    bad = leads_cli(database_url, "token", "create", "--name", "has space")
    assert bad.returncode == 2
    assert "name" in bad.stderr

    assert leads_cli(database_url, "token", "revoke", "reports").returncode == 0
    assert await query("SELECT name FROM api_tokens") == []
    missing = leads_cli(database_url, "token", "revoke", "reports")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "leads: error: no token named 'reports'"

    actions = [r["action"] for r in await query("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["token_created", "token_revoked"]
    exported = leads_cli(database_url, "audit", "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["action"] for e in lines] == ["token_created", "token_revoked"]
    assert all(e["actor"] == "cli" for e in lines)
