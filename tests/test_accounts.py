"""`leads user add|passwd|disable|list` as an operator runs them, and how passwords are kept.
What an account opens (sessions, sign-in) is in test_sessions.py."""

from __future__ import annotations

import json

import pytest
from argon2 import PasswordHasher, Type

from leads.staff.accounts import HASHER, needs_rehash, password_matches
from tests.conftest import Query, make_settings, migrate
from tests.support import leads_cli

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


async def test_an_account_is_added_with_its_password_from_standard_input(
    database_url: str, query: Query
) -> None:
    await migrate(make_settings(database_url))
    added = leads_cli(database_url, "user", "add", "Front.Desk@Clinic.Example", stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "account front.desk@clinic.example (staff) added"
    admin = leads_cli(
        database_url, "user", "add", "boss@clinic.example", "--role", "admin", stdin="x" * 12
    )
    assert admin.returncode == 0, admin.stderr

    rows = await query("SELECT email, role, active, password_hash FROM users ORDER BY email")
    assert [(r["email"], r["role"], bool(r["active"])) for r in rows] == [
        ("boss@clinic.example", "admin", True),
        ("front.desk@clinic.example", "staff", True),
    ]
    stored = rows[1]["password_hash"]
    assert PASSWORD not in stored
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert password_matches(stored, PASSWORD)
    assert not password_matches(stored, PASSWORD + "!")

    listed = leads_cli(database_url, "user", "list")
    assert listed.returncode == 0, listed.stderr
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert lines[0] == ["email", "role", "active", "created"]
    assert [line[:3] for line in lines[1:]] == [
        ["boss@clinic.example", "admin", "yes"],
        ["front.desk@clinic.example", "staff", "yes"],
    ]
    assert all(len(line) == 4 and line[3][:2] == "20" for line in lines[1:])


async def test_short_passwords_bad_emails_and_duplicates_are_refused_in_one_line(
    database_url: str, query: Query
) -> None:
    await migrate(make_settings(database_url))
    short = leads_cli(database_url, "user", "add", "a@clinic.example", stdin="eleven char")
    assert short.returncode == 2
    assert short.stderr == "leads: error: a password needs at least 12 characters\n"
    bad = leads_cli(database_url, "user", "add", "not an email", stdin=PASSWORD)
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1
    assert "is not an email address" in bad.stderr
    assert await query("SELECT email FROM users") == []

    assert (
        leads_cli(database_url, "user", "add", "a@clinic.example", stdin=PASSWORD).returncode == 0
    )
    again = leads_cli(database_url, "user", "add", "A@Clinic.Example", stdin=PASSWORD + "2")
    assert again.returncode == 2
    assert again.stderr == "leads: error: there is already an account for 'a@clinic.example'\n"
    missing = leads_cli(database_url, "user", "disable", "nobody@clinic.example")
    assert missing.returncode == 2
    assert missing.stderr == "leads: error: no staff account for 'nobody@clinic.example'\n"
    short_change = leads_cli(database_url, "user", "passwd", "a@clinic.example", stdin="short")
    assert short_change.returncode == 2
    assert short_change.stderr == "leads: error: a password needs at least 12 characters\n"


async def test_passwd_and_disable_change_the_account_and_are_audited(
    database_url: str, query: Query
) -> None:
    await migrate(make_settings(database_url))
    assert (
        leads_cli(database_url, "user", "add", "a@clinic.example", stdin=PASSWORD).returncode == 0
    )
    [before] = await query("SELECT id, password_hash, sessions_valid_from FROM users")

    changed = leads_cli(
        database_url, "user", "passwd", "a@clinic.example", stdin="a new passphrase"
    )
    assert changed.returncode == 0, changed.stderr
    [after] = await query("SELECT password_hash, sessions_valid_from, active FROM users")
    assert password_matches(after["password_hash"], "a new passphrase")
    assert not password_matches(after["password_hash"], PASSWORD)
    assert str(after["sessions_valid_from"]) > str(before["sessions_valid_from"])

    disabled = leads_cli(database_url, "user", "disable", "A@clinic.example")
    assert disabled.returncode == 0, disabled.stderr
    [row] = await query("SELECT active FROM users")
    assert not row["active"]
    listed = leads_cli(database_url, "user", "list").stdout.splitlines()
    assert listed[1].split("\t")[:3] == ["a@clinic.example", "staff", "no"]

    exported = leads_cli(database_url, "audit", "export")
    entries = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["action"] for e in entries] == [
        "user_added",
        "user_password_changed",
        "user_disabled",
    ]
    assert {e["actor"] for e in entries} == {"cli"}
    user_id = str(before["id"]).replace("-", "")
    assert all(e["detail"]["user_id"].replace("-", "") == user_id for e in entries)
    assert "a@clinic.example" not in exported.stdout  # ids, never the address


def test_the_hasher_meets_owasps_minimum_and_weaker_hashes_need_replacing() -> None:
    assert HASHER.type is Type.ID
    assert HASHER.memory_cost >= 19456
    assert HASHER.time_cost >= 2
    assert HASHER.parallelism == 1
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    assert not needs_rehash(HASHER.hash(PASSWORD))
    assert password_matches(weak, PASSWORD)  # still accepted, then replaced at sign-in
