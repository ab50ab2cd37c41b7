"""The `leads` command, run as an operator runs it: a real subprocess, real databases, and
the real service for the data that `leads export` writes out."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET
from tests.servers import free_port
from tests.support import LEADS, leads_env, run_leads

CONSOLE_SCRIPT = Path(sys.executable).parent / "leads"
EXPORT_KEYS = {
    "id",
    "enquiry_ids",
    "created_at",
    "form",
    "name",
    "email",
    "phone",
    "preferred_contact",
    "message",
    "interest",
    "status",
    "spam",
}


@contextlib.contextmanager
def serving(env: dict[str, str], cwd: Path, *options: str) -> Iterator[str]:
    """`leads serve` in a subprocess until /healthz answers; yields its base URL.

    Like tests.servers.running_service, but with extra options and in a chosen directory."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with subprocess.Popen(
        [*LEADS, "serve", "--port", str(port), *options],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not _answers(f"{base}/healthz"):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    raise AssertionError(f"leads serve did not start:\n{output}")
                time.sleep(0.05)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def closed_port_url() -> str:
    return f"postgresql://postgres:pw@127.0.0.1:{free_port()}/leads"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("leads: error: "), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


# --- migrate and check -----------------------------------------------------------------


def test_migrate_then_check_says_current(tmp_path: Path) -> None:
    env = leads_env(database_url=f"sqlite:///{tmp_path / 'leads.db'}", secret_key=SECRET)
    # The console script installed in .venv/bin, and `python -m leads`: the same command.
    migrated = run_leads("migrate", env=env, cwd=tmp_path, command=(str(CONSOLE_SCRIPT),))
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == "database schema is up to date\n"
    assert (tmp_path / "leads.db").exists()

    checked = run_leads("check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "database: reachable; schema current"


@pytest.mark.postgres
def test_check_shows_settings_with_secrets_hidden(postgres_url: str, tmp_path: Path) -> None:
    password = "pw-hunter2-do-not-print"  # the test cluster trusts anyone: it is ignored
    url = postgres_url.replace("postgres@", f"postgres:{password}@")
    env = leads_env(database_url=url, secret_key=SECRET, default_region="gb")
    result = run_leads("check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert password not in output
    assert SECRET not in output
    shown = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert shown["LEADS_SECRET_KEY"] == "(set, hidden)"
    assert shown["LEADS_DATABASE_URL"].startswith("postgresql+asyncpg://postgres:***@127.0.0.1")
    assert shown["LEADS_DEFAULT_REGION"] == "GB"
    assert shown["LEADS_MAX_BODY_BYTES"] == "16384"
    assert re.fullmatch(
        r"database: reachable; schema \d+ migration\(s\) pending: run `leads migrate`",
        result.stdout.splitlines()[-1],
    )


def test_check_with_unreachable_database_fails_in_one_line(tmp_path: Path) -> None:
    env = leads_env(database_url=closed_port_url(), secret_key=SECRET)
    result = run_leads("check", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    verdicts = [line for line in result.stdout.splitlines() if line.startswith("database:")]
    assert verdicts == ["database: unreachable"]
    assert result.stderr == ""


def broken_forms_file(directory: Path) -> Path:
    path = directory / "forms.toml"
    path.write_text('[forms.dry-needling]\ntitle = "Unclosed\n', encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("settings", "command", "needle"),
    [
        ({"max_body_bytes": "abc"}, "check", "LEADS_MAX_BODY_BYTES"),
        ({"database_url": "mysql://x"}, "migrate", "LEADS_DATABASE_URL"),
        ({"database_url": "postgresql://postgres@127.0.0.1:1/x"}, "serve", "secrets.token_"),
        ({"forms_file": "BROKEN", "secret_key": SECRET}, "serve", "LEADS_FORMS_FILE"),
        ({"database_url": "CLOSED", "secret_key": SECRET}, "migrate", "cannot be reached"),
    ],
    ids=["body-bytes", "mysql", "postgres-without-key", "forms-file", "unreachable"],
)
def test_errors_in_use_are_one_line_and_exit_2(
    tmp_path: Path, settings: dict[str, str], command: str, needle: str
) -> None:
    if settings.get("forms_file") == "BROKEN":
        settings = {**settings, "forms_file": str(broken_forms_file(tmp_path))}
    if settings.get("database_url") == "CLOSED":
        settings = {**settings, "database_url": closed_port_url()}
    settings = {"database_url": f"sqlite:///{tmp_path / 'leads.db'}", **settings}
    line = assert_one_line_error(run_leads(command, env=leads_env(**settings), cwd=tmp_path))
    assert needle in line
    if "postgresql" in settings["database_url"] and "secret_key" not in settings:
        assert "LEADS_SECRET_KEY" in line


@pytest.mark.slow
def test_each_bad_setting_gets_its_own_line(tmp_path: Path) -> None:
    env = leads_env(
        max_body_bytes="abc",
        database_url="mysql://x",
        default_region="Atlantis",
        rate_limit="lots",
        allowed_origins="clinic.example",
    )
    result = run_leads("check", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    named = sorted(line.split(":")[2].strip() for line in lines)
    assert named == [
        "LEADS_ALLOWED_ORIGINS",
        "LEADS_DATABASE_URL",
        "LEADS_DEFAULT_REGION",
        "LEADS_MAX_BODY_BYTES",
        "LEADS_RATE_LIMIT",
    ]


# --- export ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Leads created through the real service, then exported both ways (once per module:
    starting the service costs a second or two)."""
    directory = tmp_path_factory.mktemp("export")
    env = leads_env(
        database_url=f"sqlite:///{directory / 'leads.db'}", secret_key=SECRET, rate_limit="off"
    )
    submissions = [
        {
            "name": "=SUM(1+1)*cmd|' /C calc'!A0",
            "email": "formula@example.com",
            "message": "first",
            "consent": True,
        },
        {
            "name": "Bea Returning",
            "email": "bea@example.com",
            "phone": "(202) 555-0143",
            "preferred_contact": "phone",
            "interest": "Headaches",
            "message": "first visit",
            "consent": True,
        },
        {
            "name": "Bea Returning",
            "email": "BEA@example.com",
            "message": "and again",
            "consent": True,
            "utm_source": "newsletter",
        },
    ]
    ids = []
    with serving(env, directory) as base:
        for body in submissions:
            response = httpx.post(f"{base}/api/leads", json=body, timeout=10)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    jsonl = run_leads("export", "--format", "jsonl", env=env, cwd=directory)
    as_csv = run_leads("export", "--format", "csv", env=env, cwd=directory)
    for result in (jsonl, as_csv):
        assert result.returncode == 0, result.stderr
    # Each export is audited, as a download from the dashboard is.
    with sqlite3.connect(directory / "leads.db") as conn:
        audited = conn.execute("SELECT actor, action, detail FROM audit_log ORDER BY id").fetchall()
    assert [(actor, action, json.loads(detail)["format"]) for actor, action, detail in audited] == [
        ("cli", "leads_exported", "jsonl"),
        ("cli", "leads_exported", "csv"),
    ]
    return {"ids": ids, "jsonl": jsonl.stdout, "csv": as_csv.stdout}


def test_export_jsonl_has_every_lead_with_the_contract_keys(exported: dict[str, Any]) -> None:
    records = [json.loads(line) for line in exported["jsonl"].splitlines()]
    first, second, again = exported["ids"]
    # Each submission's receipt, under its lead, oldest first; a lead's id is never a receipt.
    assert [r["enquiry_ids"] for r in records] == [[first], [second, again]]
    assert not {r["id"] for r in records} & {first, second, again}
    for record in records:
        assert set(record) >= EXPORT_KEYS, EXPORT_KEYS - set(record)
        assert record["status"] == "new"
        assert record["spam"] is False
        assert record["form"] == "dry-needling"
        assert record["created_at"].endswith("+00:00")
    formula, bea = records
    assert formula["name"] == "=SUM(1+1)*cmd|' /C calc'!A0"  # JSON is data, as given
    assert bea["phone"] == "+12025550143"
    assert bea["preferred_contact"] == "phone"
    assert bea["interest"] == "Headaches"
    assert bea["message"] == "first visit"
    assert bea["enquiry_count"] == 2
    assert [(e["message"], e["utm_source"]) for e in bea["enquiries"]] == [
        ("and again", "newsletter")
    ]


def test_export_csv_escapes_formulas_and_keeps_phone_numbers(exported: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(exported["csv"])))
    first, second, again = exported["ids"]
    assert [row["enquiry_ids"] for row in rows] == [first, f"{second} {again}"]
    assert set(rows[0]) >= EXPORT_KEYS
    formula, bea = rows
    assert formula["name"] == "'=SUM(1+1)*cmd|' /C calc'!A0"  # a leading apostrophe
    assert formula["phone"] == ""
    assert formula["spam"] == "false"
    assert bea["name"] == "Bea Returning"
    assert bea["phone"] == "+12025550143"
    assert bea["enquiry_count"] == "2"


# --- serve -------------------------------------------------------------------------------


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    """SQLite takes one writer at a time: several workers would only queue behind each
    other. `serve` says so in one line, before it creates or migrates anything."""
    env = leads_env(database_url=f"sqlite:///{tmp_path / 'leads.db'}")
    result = run_leads("serve", "--workers", "2", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("leads: error: --workers 2 needs PostgreSQL")
    assert "one worker" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no database, no key file
    zero = run_leads("serve", "--workers", "0", env=env, cwd=tmp_path)
    assert zero.returncode == 2
    assert zero.stderr == "leads: error: --workers must be at least 1\n"


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_with_two_workers_answers(tmp_path: Path, postgres_url: str) -> None:
    env = leads_env(database_url=postgres_url, secret_key=SECRET)
    with serving(env, tmp_path, "--workers", "2") as base:
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        form = httpx.get(f"{base}/f/dry-needling", timeout=5)
        assert form.status_code == 200
        answered = httpx.post(
            f"{base}/api/leads",
            json={"name": "Ann Smith", "email": "ann@example.com", "consent": True},
            timeout=5,
        )
        assert answered.status_code == 201, answered.text


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_with_two_workers_logs_like_one_process(tmp_path: Path, postgres_url: str) -> None:
    """Workers are spawned processes: each configures the service's logging itself."""
    env = leads_env(database_url=postgres_url, secret_key=SECRET, log_format="text")
    port = free_port()
    with subprocess.Popen(
        [*LEADS, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as process:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while not _answers(f"{base}/healthz"):
                assert process.poll() is None, "leads serve stopped"
                assert time.monotonic() < deadline, "leads serve did not start"
                time.sleep(0.05)
            response = httpx.post(
                f"{base}/api/leads",
                json={"name": "Ann Smith", "email": "ann@example.com", "consent": True},
                timeout=5,
            )
            assert response.status_code == 201, response.text
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=15)
    log = output.decode()
    receipt = response.json()["id"]
    assert re.search(rf"INFO leads\.\S+: lead \S+ created \(receipt={receipt} ", log), log
    assert "Ann" not in log  # the workers' log keeps what visitors typed out, as one process's


DATABASE_COMMANDS = [
    ("export",),
    ("export", "--format", "csv"),
    ("outbox", "list"),
    ("outbox", "retry", "--all-dead"),
    ("spam", "release", "05e8203d-e103-48f9-b3a6-bf43fab20b18"),
    ("worker",),
]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_a_command_on_a_missing_database_says_so_and_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = tmp_path / "nowhere.db"
    env = leads_env(database_url=f"sqlite:///{path}", secret_key=SECRET)
    result = run_leads(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"leads: error: there is no database at {path} yet")
    assert "run `leads migrate`" in line
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_a_command_on_an_unmigrated_database_names_the_fix(
    database_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    url = plain(database_url)
    if url.startswith("sqlite"):
        sqlite3.connect(url.removeprefix("sqlite:///")).close()  # an empty file, no tables
    env = leads_env(database_url=url, secret_key=SECRET)
    result = run_leads(*command, env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    (line,) = result.stderr.splitlines()
    assert line.startswith("leads: error: the database at ")
    assert "migration(s) pending): run `leads migrate` first" in line
    assert "Traceback" not in result.stderr


def plain(url: str) -> str:
    """The URL as an operator writes it (leads picks the async driver itself)."""
    return url.replace("+aiosqlite", "").replace("+asyncpg", "")
