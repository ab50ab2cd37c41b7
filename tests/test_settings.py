"""Settings from LEADS_* variables and .env, the secret key, and the README's table of them."""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from leads.errors import ConfigurationError
from leads.keys import key_file_for, with_secret_key
from leads.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No LEADS_* variable from outside, and a working directory with no .env in it."""
    for name in list(os.environ):
        if name.startswith("LEADS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults_work_on_a_laptop(environ: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.database_url == "sqlite+aiosqlite:///./leads.db"
    assert s.is_sqlite
    assert s.secret_key is None
    assert s.default_region == "US"
    assert s.allowed_origins == ()
    assert s.max_body_bytes == 16384
    assert s.rate_limit == "5/minute;30/day"
    assert s.forms_file is None


def test_variables_need_the_prefix(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("LEADS_DEFAULT_REGION", "gb")
    environ.setenv("LEADS_MAX_BODY_BYTES", "2048")
    environ.setenv("LEADS_FORMS_FILE", "/etc/leads/forms.toml")
    environ.setenv("MAX_BODY_BYTES", "1")
    s = Settings()
    assert s.default_region == "GB"
    assert s.max_body_bytes == 2048
    assert s.forms_file == Path("/etc/leads/forms.toml")


def test_dot_env_in_the_working_directory(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "LEADS_DEFAULT_REGION=DE\nLEADS_RATE_LIMIT=off\nLEADS_SECRET_KEY=from-dot-env-0123456789\n",
        encoding="utf-8",
    )
    environ.setenv("LEADS_RATE_LIMIT", "10/minute")  # the environment wins over .env
    s = Settings()
    assert s.default_region == "DE"
    assert s.rate_limit == "10/minute"
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "from-dot-env-0123456789"
    assert "from-dot-env" not in repr(s)


def test_an_explicit_env_file(tmp_path: Path) -> None:
    path = tmp_path / "leads.env"
    path.write_text("LEADS_ALLOWED_ORIGINS=https://clinic.example\n", encoding="utf-8")
    s = Settings(_env_file=path)
    assert s.allowed_origins == ("https://clinic.example",)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (
            "postgresql://u:p%40ss@db.example:5433/leads",
            "postgresql+asyncpg://u:p%40ss@db.example:5433/leads",
        ),
        ("postgres://u@db/leads", "postgresql+asyncpg://u@db/leads"),
        ("postgresql+asyncpg://u@db/leads", "postgresql+asyncpg://u@db/leads"),
        ("postgresql+psycopg://u@db/leads", "postgresql+asyncpg://u@db/leads"),
        ("sqlite:////var/lib/leads/leads.db", "sqlite+aiosqlite:////var/lib/leads/leads.db"),
        ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
    ],
)
def test_database_urls_use_the_async_drivers(given: str, used: str) -> None:
    assert settings(database_url=given).database_url == used


@pytest.mark.parametrize("url", ["mysql://x", "not a url", "", "oracle://u@h/db"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="database_url"):
        settings(database_url=url)


@pytest.mark.parametrize(
    ("given", "origins"),
    [
        ("", ()),
        ("https://clinic.example", ("https://clinic.example",)),
        (
            " https://a.example/ , http://localhost:3000,, ",
            ("https://a.example", "http://localhost:3000"),
        ),
        ("*", ("*",)),
    ],
)
def test_allowed_origins_are_a_comma_list(
    environ: pytest.MonkeyPatch, given: str, origins: tuple[str, ...]
) -> None:
    environ.setenv("LEADS_ALLOWED_ORIGINS", given)
    assert Settings().allowed_origins == origins


@pytest.mark.parametrize(
    "given", ["clinic.example", "ftp://clinic.example", '["https://a.example"]']
)
def test_an_origin_must_be_a_web_origin(environ: pytest.MonkeyPatch, given: str) -> None:
    environ.setenv("LEADS_ALLOWED_ORIGINS", given)
    with pytest.raises(ValidationError, match="allowed_origins"):
        Settings()


@pytest.mark.parametrize(("given", "region"), [("US", "US"), ("gb", "GB"), (" de ", "DE")])
def test_region_codes(given: str, region: str) -> None:
    assert settings(default_region=given).default_region == region


@pytest.mark.parametrize("given", ["XX", "USA", "", "uk"])
def test_unknown_regions_are_refused(given: str) -> None:
    with pytest.raises(ValidationError, match="default_region"):
        settings(default_region=given)


@pytest.mark.parametrize(
    ("given", "limit"),
    [
        ("off", "off"),
        (" OFF ", "off"),
        ("10/minute", "10/minute"),
        ("5/minute;30/day", "5/minute;30/day"),
    ],
)
def test_rate_limits(given: str, limit: str) -> None:
    assert settings(rate_limit=given).rate_limit == limit


@pytest.mark.parametrize("given", ["lots", "5 per fortnight", "", "none"])
def test_unreadable_rate_limits_are_refused(given: str) -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        settings(rate_limit=given)


@pytest.mark.parametrize("given", ["abc", "0", "-1"])
def test_max_body_bytes_must_be_a_positive_number(environ: pytest.MonkeyPatch, given: str) -> None:
    environ.setenv("LEADS_MAX_BODY_BYTES", given)
    with pytest.raises(ValidationError, match="max_body_bytes"):
        Settings()


def test_settings_are_frozen() -> None:
    s = settings()
    with pytest.raises(ValidationError):
        s.default_region = "GB"  # type: ignore[misc]


def test_public_view_hides_secrets() -> None:
    s = settings(
        database_url="postgresql://leads:pa55word-xyz@db.example/leads",
        secret_key="top-secret-0123456789",
    )
    view = s.public_view()
    text = "\n".join(f"{k}={v}" for k, v in view.items())
    assert "pa55word-xyz" not in text
    assert "top-secret" not in text
    assert view["LEADS_SECRET_KEY"] == "(set, hidden)"
    assert view["LEADS_DATABASE_URL"] == "postgresql+asyncpg://leads:***@db.example/leads"
    assert set(view) == {f"LEADS_{name.upper()}" for name in Settings.model_fields}


# --- the secret key ----------------------------------------------------------------------


def test_sqlite_key_is_made_once_beside_the_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(database_url=f"sqlite:///{tmp_path / 'data' / 'leads.db'}")
    with caplog.at_level(logging.WARNING, logger="leads"):
        first = with_secret_key(s)
    path = tmp_path / "data" / "leads.db.secret"
    assert key_file_for(s) == path
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.secret_key is not None
    key = first.secret_key.get_secret_value()
    assert len(key) >= 32
    assert path.read_text(encoding="utf-8").strip() == key
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert str(path) in caplog.records[0].getMessage()
    assert key not in caplog.text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leads"):
        again = with_secret_key(settings(database_url=s.database_url))
    assert again.secret_key is not None
    assert again.secret_key.get_secret_value() == key
    assert caplog.records == []
    assert [p.name for p in path.parent.iterdir()] == ["leads.db.secret"]  # no scratch left


def test_workers_starting_at_once_share_one_key(tmp_path: Path) -> None:
    s = settings(database_url=f"sqlite:///{tmp_path / 'leads.db'}")
    start = threading.Barrier(8)
    keys: list[str] = []

    def worker() -> None:
        start.wait()
        made = with_secret_key(s).secret_key
        assert made is not None
        keys.append(made.get_secret_value())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(keys) == 8
    assert len(set(keys)) == 1
    assert len(keys[0]) >= 32


def test_an_unusable_key_file_is_an_error_not_an_empty_key(tmp_path: Path) -> None:
    s = settings(database_url=f"sqlite:///{tmp_path / 'leads.db'}")
    (tmp_path / "leads.db.secret").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"leads\.db\.secret.*LEADS_SECRET_KEY"):
        with_secret_key(s)


def test_a_set_key_is_used_as_given(tmp_path: Path) -> None:
    s = settings(database_url=f"sqlite:///{tmp_path / 'leads.db'}", secret_key="k" * 20)
    assert with_secret_key(s) is s
    assert not (tmp_path / "leads.db.secret").exists()


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="LEADS_SECRET_KEY is too short"):
        with_secret_key(settings(secret_key="short"))


def test_in_memory_sqlite_gets_a_key_for_this_process_only(tmp_path: Path) -> None:
    made = with_secret_key(settings(database_url="sqlite+aiosqlite:///:memory:")).secret_key
    assert made is not None
    assert len(made.get_secret_value()) >= 32


def test_postgres_requires_a_key_and_says_how_to_set_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        with_secret_key(settings(database_url="postgresql://leads@db.example/leads"))
    message = str(caught.value)
    assert "LEADS_SECRET_KEY" in message
    assert "PostgreSQL" in message
    assert "token_urlsafe" in message
    assert "\n" not in message


# --- docs --------------------------------------------------------------------------------


def configuration_table(readme: str) -> list[list[str]] | None:
    """Rows of the first markdown table under a heading containing "Configuration"."""
    lines = readme.splitlines()
    for index, line in enumerate(lines):
        heading = re.match(r"^(#+)\s+(.*)", line)
        if heading and "configuration" in heading.group(2).lower():
            level = len(heading.group(1))
            rows: list[list[str]] = []
            for later in lines[index + 1 :]:
                deeper = re.match(r"^(#+)\s", later)
                if deeper and len(deeper.group(1)) <= level:
                    break
                if later.lstrip().startswith("|"):
                    rows.append([cell.strip() for cell in later.strip().strip("|").split("|")])
                elif rows:
                    break  # the table has ended
            return rows or None
    return None


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    rows = configuration_table((ROOT / "README.md").read_text(encoding="utf-8"))
    assert rows is not None, (
        "README.md needs a markdown table under a heading containing 'Configuration', "
        "one row per LEADS_* setting"
    )
    documented = {name for row in rows for name in re.findall(r"LEADS_[A-Z0-9_]+", row[0])}
    expected = {f"LEADS_{name.upper()}" for name in Settings.model_fields}
    undocumented = sorted(expected - documented)
    assert not undocumented, f"settings missing from README.md's table: {', '.join(undocumented)}"
    unknown = sorted(documented - expected)
    assert not unknown, f"README.md's table names settings that do not exist: {', '.join(unknown)}"


def test_the_table_reader_finds_names_and_stops_at_the_next_section() -> None:
    readme = (
        "# leads\n\n## Configuration\n\nSome words.\n\n"
        "| Variable | Default | Meaning |\n|---|---|---|\n"
        "| `LEADS_A` | x | a |\n| `LEADS_B_C` | | b |\n\n"
        "## Deployment\n\n| `LEADS_NOT_HERE` | | |\n"
    )
    rows = configuration_table(readme)
    assert rows is not None
    assert [row[0] for row in rows] == ["Variable", "---", "`LEADS_A`", "`LEADS_B_C`"]
    assert configuration_table("# leads\n\n## Configuration\n\nNo table.\n") is None


def test_connection_limits_default_to_a_safe_server(environ: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.header_timeout_seconds, s.body_timeout_seconds) == (10.0, 30.0)
    assert (s.max_header_bytes, s.max_headers, s.max_connections) == (16384, 100, 1000)


def test_connection_limits_are_read_from_the_environment(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("LEADS_HEADER_TIMEOUT_SECONDS", "2.5")
    environ.setenv("LEADS_BODY_TIMEOUT_SECONDS", "5")
    environ.setenv("LEADS_MAX_HEADER_BYTES", "8192")
    environ.setenv("LEADS_MAX_HEADERS", "50")
    environ.setenv("LEADS_MAX_CONNECTIONS", "200")
    s = Settings()
    assert (s.header_timeout_seconds, s.body_timeout_seconds) == (2.5, 5.0)
    assert (s.max_header_bytes, s.max_headers, s.max_connections) == (8192, 50, 200)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("header_timeout_seconds", 0),
        ("header_timeout_seconds", 301),
        ("body_timeout_seconds", -1),
        ("body_timeout_seconds", 3601),
        ("max_header_bytes", 1023),  # too small for an ordinary browser's request head
        ("max_header_bytes", 2**20 + 1),
        ("max_headers", 9),
        ("max_headers", 1001),
        ("max_connections", 0),
    ],
)
def test_connection_limits_out_of_range_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=name):
        settings(**{name: value})
