"""Settings from LEADS_* variables and .env: every value checked as they load (a bad one
stops `leads` with one line naming it), secrets hidden, and the secret key."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from leads.cli import main
from leads.errors import ConfigurationError
from leads.keys import key_file_for, with_secret_key
from leads.settings import GROUPS, Settings, error_lines
from tests.servers import free_port

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


def test_variables_need_the_prefix(environ: pytest.MonkeyPatch, tmp_path: Path) -> None:
    environ.setenv("LEADS_DEFAULT_REGION", "gb")
    environ.setenv("LEADS_MAX_BODY_BYTES", "2048")
    forms = tmp_path / "forms.toml"
    forms.write_text("[forms]\n", encoding="utf-8")
    environ.setenv("LEADS_FORMS_FILE", str(forms))
    environ.setenv("MAX_BODY_BYTES", "1")
    s = Settings()
    assert s.default_region == "GB"
    assert s.max_body_bytes == 2048
    assert s.forms_file == forms


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
    with pytest.raises(ValidationError, match=r"secret_key\n.*too short"):
        settings(secret_key="short")
    # And by with_secret_key too, for settings built without validation.
    unchecked = settings().model_copy(update={"secret_key": SecretStr("short")})
    with pytest.raises(ConfigurationError, match="LEADS_SECRET_KEY is too short"):
        with_secret_key(unchecked)


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


# --- every setting refuses a bad value, in one line naming it ----------------------------

# One bad value per setting, as it would be written in the environment. A new setting
# fails test_every_setting_has_a_bad_value until it gets one here.
BAD_VALUES = {
    "database_url": "mysql://x",
    "secret_key": "tiny-secret-x",  # under 16 characters
    "database_timeout_seconds": "0",
    "default_region": "XX",
    "allowed_origins": "clinic.example",
    "max_body_bytes": "0",
    "forms_file": "/nonexistent/forms.toml",
    "intake_queue_size": "0",
    "log_level": "loud",
    "log_format": "xml",
    "alert_after_minutes": "0",
    "header_timeout_seconds": "0",
    "body_timeout_seconds": "3601",
    "max_header_bytes": "1023",
    "max_headers": "9",
    "max_connections": "0",
    "rate_limit": "lots",
    "min_fill_seconds": "-1",
    "require_form_token": "maybe",
    "rate_limit_storage": "redis://",
    "trusted_proxies": "10.0.0.0/33",
    "captcha_provider": "recaptcha2",
    "captcha_site_key": "two words",
    "captcha_secret": "two words",
    "captcha_min_score": "2",
    "captcha_fail_open": "maybe",
    "captcha_timeout_seconds": "nan",
    "blocked_terms": "casino;pills",
    "max_links": "-1",
    "tarpit_seconds": "6",
    "tarpit_capacity": "0",
    "smtp_url": "smtpx://user:pw-do-not-print@mail.example",
    "inbox": "not-an-address",
    "mail_from": "nobody",
    "email_api": "mailchimp",
    "email_api_key": "two words",
    "mailgun_domain": "not a domain",
    "email_api_base_url": "api.mailgun.net",
    "webhook_urls": "ftp://hooks.example/?token=do-not-print",
    "webhook_secret": "abc",
    "public_url": "clinic.example",
    "notify_detail": "everything",
    "autoreply": "maybe",
    "retry_base_seconds": "0",
    "retry_give_up_hours": "inf",
    "dispatcher": "cron",
    "delivery_timeout_seconds": "0",
    "shutdown_grace_seconds": "-1",
    "timezone": "Mars/Olympus_Mons",
    "clinic_name": "Northside Physio " * 7,  # over 100 characters
    "clinic_phone": "555 0100",  # too short to be a number in the US
    "clinic_url": "clinic.example",
    "session_idle_minutes": "0",
    "session_max_hours": "721",
    "opening_hours": "Mon-Fri 8-18",
    "follow_up_hours": "0",
    "digest_at": "7am",
    "retention_days": "0",
    "spam_retention_days": "-1",
    "metrics_token": "short-token",  # under 16 characters
    "metrics_bind": "127.0.0.1",  # no port
    "sms_provider": "plivo",
    "sms_account": "two words",
    "sms_token": "two words do-not-print",
    "sms_from": "+1 555",  # too short to be a number
    "sms_to": "+12025550143,2025550199",  # the second has no +country
    "sms_detail": "full",
    "sms_quiet_hours": "20:00",
    "sms_base_url": "api.twilio.com",
    "language": "fr",  # not shipped
    "negotiate_language": "sometimes",
}
SECRET_FIELDS = {
    name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
}


def test_every_setting_has_a_bad_value() -> None:
    assert sorted(BAD_VALUES) == sorted(Settings.model_fields)


def env_name(name: str) -> str:
    return f"LEADS_{name.upper()}"


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
@pytest.mark.slow
def test_a_bad_value_stops_leads_in_one_line_naming_it(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """`leads check` through main(), in this process: the path every command takes first."""
    environ.setenv(env_name(name), BAD_VALUES[name])
    assert main(["check"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"leads: error: {env_name(name)}: "), line
    assert len(line) > len(f"leads: error: {env_name(name)}: ") + 5  # it says what is wrong
    for secret in ("pw-do-not-print", "do-not-print"):
        assert secret not in line
    if name in SECRET_FIELDS:
        assert BAD_VALUES[name] not in line


def leads_process(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "leads", *command],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LEADS_")}, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.slow
def test_check_and_serve_refuse_every_bad_value_before_serving(tmp_path: Path) -> None:
    """Real processes: `check` and `serve` given every bad value at once name each setting on
    a line of its own; and the SMTP URL alone (which once got as far as a traceback)."""
    every = {env_name(name): value for name, value in BAD_VALUES.items()}
    smtp = {env_name("smtp_url"): "smtpx://mail.example", env_name("inbox"): "a@b.example"}
    runs = {
        ("check", "every"): (["check"], every),
        ("serve", "every"): (["serve", "--port", str(free_port())], every),
        ("check", "smtp"): (["check"], smtp),
        ("serve", "smtp"): (["serve", "--port", str(free_port())], smtp),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(leads_process, *run, tmp_path) for key, run in runs.items()}
        results = {key: future.result() for key, future in futures.items()}
    for (command, case), (status, out, err) in results.items():
        assert status == 2, (command, case, out, err)
        assert "Traceback" not in out + err
        assert "do-not-print" not in out + err
        assert out == "", (command, out)  # nothing printed, nothing served
        lines = err.splitlines()
        assert all(line.startswith("leads: error: LEADS_") for line in lines), err
        named = [line.split(":")[2].strip() for line in lines]
        if case == "every":
            assert sorted(named) == sorted(every), (command, err)
        else:
            assert named == ["LEADS_SMTP_URL"], (command, err)


# --- what the checks accept and refuse ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mail.example",
        "smtp://user:p%40ss@mail.example:587",
        "smtps://user:pass@mail.example:465",
        "smtp://mail.example:2525/?starttls=require",
        "smtp://mail.example?starttls=off",
        "smtp://[2001:db8::1]:25",
    ],
)
def test_smtp_urls_accepted(url: str) -> None:
    s = settings(smtp_url=url, inbox="desk@clinic.example")
    assert s.smtp_url is not None
    assert s.smtp_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("smtpx://mail.example", "smtp:// or smtps://"),
        ("mail.example:587", "smtp:// or smtps://"),
        ("smtp://", "no host"),
        ("smtp://user:pass@:587", "no host"),
        ("smtp://mail.example:70000", "port"),
        ("smtp://mail.example:0", "port"),
        ("smtp://mail.example:abc", "port"),
        ("smtp://mail.example?starttls=yes", "starttls must be require, auto or off"),
        ("smtp://mail.example?starttls=", "starttls must be require, auto or off"),
        ("smtp://mail.example?tls=on", "unknown option 'tls'"),
        ("smtp://mail.example/inbox", "path"),
        ("smtp://mail example", "spaces"),
    ],
)
def test_smtp_urls_refused(url: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(smtp_url=url, inbox="desk@clinic.example")
    [line] = error_lines(caught.value)
    assert line.startswith("LEADS_SMTP_URL: ")
    assert reason in line


@pytest.mark.parametrize(
    ("name", "good", "kept"),
    [
        ("rate_limit_storage", "redis://cache:6379/0", "redis://cache:6379/0"),
        ("rate_limit_storage", "rediss://u:p@cache", "rediss://u:p@cache"),
        ("rate_limit_storage", "memory://", "memory://"),
        ("public_url", "https://leads.clinic.example/", "https://leads.clinic.example"),
        ("public_url", "http://10.0.0.5:8000/leads", "http://10.0.0.5:8000/leads"),
        ("email_api_base_url", "https://api.eu.mailgun.net", "https://api.eu.mailgun.net"),
        ("mailgun_domain", "mg.clinic.example", "mg.clinic.example"),
        ("mail_from", "Clinic <desk@clinic.example>", "Clinic <desk@clinic.example>"),
        ("captcha_site_key", "0x4AAAAAAA-_bc", "0x4AAAAAAA-_bc"),
        ("allowed_origins", "HTTP://LOCALHOST:3000/,null", ("http://localhost:3000", "null")),
        (
            "trusted_proxies",
            "127.0.0.1, ::1, 10.0.0.0/8",
            ("127.0.0.1/32", "::1/128", "10.0.0.0/8"),
        ),
        ("blocked_terms", "casino, cheap pills", ("casino", "cheap pills")),
        ("inbox", "a@b.example, Desk <c@d.example>", ("a@b.example", "Desk <c@d.example>")),
        ("clinic_name", "  Ann  &  <Co>  ", "Ann & <Co>"),
        ("clinic_phone", "(202) 555-0123", "+12025550123"),
        ("clinic_phone", "+44 20 7946 0018", "+442079460018"),
        ("clinic_url", "https://clinic.example/", "https://clinic.example/"),
    ],
)
def test_good_values_are_kept(
    environ: pytest.MonkeyPatch, name: str, good: str, kept: object
) -> None:
    environ.setenv(env_name(name), good)
    assert getattr(Settings(_env_file=None), name) == kept


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("rate_limit_storage", "mysql://cache"),
        ("rate_limit_storage", "redis://cache:99999"),
        ("rate_limit_storage", "redis://cache/zero"),
        ("public_url", "ftp://leads.clinic.example"),
        ("public_url", "https://leads.clinic.example/?a=1"),
        ("public_url", "https://"),
        ("webhook_urls", "https://ok.example/hook,http:///nohost"),
        ("database_url", "postgresql://u@db:99999/leads"),
        ("allowed_origins", "https://clinic.example/contact"),
        ("allowed_origins", "https://"),
        ("inbox", "desk@clinic.example; other@clinic.example"),
        ("inbox", "desk@.example"),
        ("mail_from", "desk @clinic.example"),
        ("rate_limit", "0/minute"),
        ("webhook_secret", "whsec_!!!!"),
        ("webhook_secret", "whsec_"),
        ("blocked_terms", "!!!"),
        ("max_body_bytes", "1e12"),
        ("delivery_timeout_seconds", "inf"),
        ("clinic_phone", "call us"),
        ("clinic_phone", "+1 202 555 0123 0123 0123 0123 0123 0123 0123"),
        ("clinic_url", "javascript:alert(1)"),
        ("clinic_url", "https://"),
        ("clinic_name", "Ann\nBcc: x@y.example"),
    ],
)
def test_other_bad_values_are_refused(environ: pytest.MonkeyPatch, name: str, bad: str) -> None:
    environ.setenv(env_name(name), bad)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    [line] = error_lines(caught.value)
    assert line.startswith(f"{env_name(name)}: ")
    assert "do-not-print" not in line


def test_the_settings_are_declared_by_subsystem() -> None:
    """One flat object, its fields the groups' fields, in the groups' order."""
    declared = [name for group in GROUPS for name in group.model_fields]
    assert declared == list(Settings.model_fields)
    assert all(issubclass(Settings, group) for group in GROUPS)
    # Validators are inherited by name: one group's must not hide another's.
    checks = Settings.__pydantic_decorators__
    for group in GROUPS:
        mine = group.__pydantic_decorators__
        assert set(mine.field_validators) <= set(checks.field_validators)
        assert set(mine.model_validators) <= set(checks.model_validators)
    assert len(checks.field_validators) == sum(
        len(group.__pydantic_decorators__.field_validators) for group in GROUPS
    )


def test_leads_check_lists_every_setting_in_its_established_order() -> None:
    from leads.settings.display import CHECK_ORDER

    assert sorted(CHECK_ORDER) == sorted(Settings.model_fields), "add a new setting at the end"
    assert list(settings().public_view()) == [f"LEADS_{name.upper()}" for name in CHECK_ORDER]


def test_the_clinic_phone_is_read_in_the_default_region(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("LEADS_DEFAULT_REGION", "GB")
    environ.setenv("LEADS_CLINIC_PHONE", "020 7946 0018")
    assert Settings(_env_file=None).clinic_phone == "+442079460018"
    environ.setenv("LEADS_DEFAULT_REGION", "US")
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert [line.split(":")[0] for line in error_lines(caught.value)] == ["LEADS_CLINIC_PHONE"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ('clinic_phone = "12"', "form 'back-pain': clinic_phone is not a valid phone number"),
        ("clinic_phone = 2025550123", "form 'back-pain': clinic_phone must be text"),
        ('clinic_url = "ftp://clinic.example"', "form 'back-pain': clinic_url must be an http"),
        ('clinic_url = "https://"', "form 'back-pain': clinic_url has no host"),
        ('clinic_name = "x\\ny"', "form 'back-pain': clinic_name must be one line"),
        (f'interest_label = "{"x" * 201}"', "form 'back-pain': interest_label is at most 200"),
    ],
)
def test_a_bad_clinic_value_in_the_forms_file_stops_leads_naming_form_and_key(
    environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    spec: str,
    reason: str,
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(f'[forms.back-pain]\ntitle = "Back pain"\n{spec}\n', encoding="utf-8")
    environ.setenv("LEADS_FORMS_FILE", str(forms))
    environ.setenv("LEADS_DATABASE_URL", f"sqlite:///{tmp_path / 'leads.db'}")
    assert main(["check"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("leads: error: LEADS_FORMS_FILE: "), line
    assert reason in line


def test_a_forms_file_clinic_phone_is_read_in_the_default_region(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(
        '[forms.back-pain]\ntitle = "Back pain"\nclinic_phone = "020 7946 0018"\n',
        encoding="utf-8",
    )
    environ.setenv("LEADS_FORMS_FILE", str(forms))
    environ.setenv("LEADS_DATABASE_URL", f"sqlite:///{tmp_path / 'leads.db'}")
    assert main(["check"]) == 2  # a London number, read as a US one
    assert "clinic_phone is not a valid phone number" in capsys.readouterr().err
    environ.setenv("LEADS_DEFAULT_REGION", "GB")
    main(["check"])
    out, err = capsys.readouterr()
    assert "forms: back-pain, dry-needling" in out, err
