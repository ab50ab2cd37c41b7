"""All configuration, read once from ``LEADS_*`` environment variables (and ``.env``).

Every setting has a default that works on a laptop and a one-line description; the README's
configuration table is checked against this class by a test.
"""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _address(value: str, name: str) -> str:
    """An operator's address, optionally with a display name: ``Clinic <desk@clinic.example>``."""
    value = value.strip()
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (local and at and domain) or any(c in value for c in "\r\n\0,"):
        raise ValueError(f"{value!r} is not an email address")
    return value


class Settings(BaseSettings):
    """The one settings object. Frozen: build a new one to change anything."""

    model_config = SettingsConfigDict(
        env_prefix="LEADS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///./leads.db",
        description="Database URL: SQLite file (default) or postgresql://user:pass@host/db.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key for signing tokens. SQLite: generated once beside the database if "
        "unset. PostgreSQL: required.",
    )
    default_region: str = Field(
        "US", description="Region (ISO 3166 code) for phone numbers written without +country."
    )
    allowed_origins: CommaList = Field(
        (),
        description="Comma-separated web origins allowed to call the API from a browser; "
        "empty = none; `null` admits pages that send `Origin: null`.",
    )
    max_body_bytes: int = Field(
        16384, gt=0, description="Largest accepted submission body, in bytes."
    )
    rate_limit: str = Field(
        "5/minute;30/day",
        description="Submissions allowed per client, as `N/period;N/period`; `off` disables.",
    )
    forms_file: Path | None = Field(
        None, description="Optional TOML or JSON file defining forms (see docs/forms.md)."
    )
    database_timeout_seconds: float = Field(
        5.0, gt=0, description="How long to wait for the database before answering 503."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    intake_queue_size: int = Field(
        1000,
        gt=0,
        description="Submissions waiting to be written, at most; beyond it: 503 Retry-After.",
    )

    # What one connection may cost (leads/web/connections.py)
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A connection must send a complete request head within this long of "
        "opening or of its previous answer; else 408 (or closed, if it sent nothing).",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Time allowed for a request body after its head; also how long a client "
        "may leave its answers unread. Else 408 and close.",
    )
    max_header_bytes: int = Field(
        16384,
        ge=1024,
        le=1048576,
        description="Largest request head (request line and headers), in bytes; beyond it: 431.",
    )
    max_headers: int = Field(
        100, ge=10, le=1000, description="Most headers in one request; beyond it: 431."
    )
    max_connections: int = Field(
        1000,
        ge=1,
        le=1000000,
        description="Open connections per process, at most; beyond it the longest-idle one is "
        "closed, or (none idle) the newcomer gets 503.",
    )

    # Spam and abuse defence (leads/abuse/)
    min_fill_seconds: float = Field(
        3.0, ge=0, description="Forms submitted sooner than this after being served are spam."
    )
    require_form_token: bool = Field(
        False,
        description="Flag submissions without a form token (JSON and form posts) as spam.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate limits are counted: memory:// (one process) or "
        "redis://host:6379 (shared by all instances).",
    )
    trusted_proxies: CommaList = Field(
        (),
        description="Comma-separated proxy addresses or CIDRs whose X-Forwarded-For is "
        "believed; empty = none.",
    )
    captcha_provider: Literal["turnstile", "hcaptcha", "recaptcha"] | None = Field(
        None, description="Optional captcha on forms: turnstile, hcaptcha or recaptcha (v3)."
    )
    captcha_site_key: str | None = Field(
        None, description="The captcha's public site key, required with a provider."
    )
    captcha_secret: SecretStr | None = Field(
        None, description="The captcha's secret key, required with a provider."
    )
    captcha_min_score: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Lowest reCAPTCHA v3 (or hCaptcha Enterprise) score accepted as human, 0-1.",
    )
    captcha_fail_open: bool = Field(
        True,
        description="When the captcha service cannot be reached, accept the submission "
        "(true) or flag it as spam (false).",
    )
    captcha_timeout_seconds: float = Field(
        5.0, gt=0, description="How long to wait for the captcha service's verdict."
    )
    blocked_terms: CommaList = Field(
        (), description="Comma-separated words or phrases that mark a submission as spam."
    )
    max_links: int = Field(
        3, ge=0, description="Messages with more links than this are flagged as spam."
    )
    tarpit_seconds: float = Field(
        1.0,
        ge=0,
        le=5,
        description="Answers to rate-limited and spam-flagged submissions wait 1-2 times "
        "this long, so a flooding client gets at most one answer per connection per "
        "interval; 0 = at once.",
    )
    tarpit_capacity: int = Field(
        1000,
        gt=0,
        description="Answers held in the tarpit at most; beyond it they are sent at once "
        "and the connection closed.",
    )

    @field_validator("trusted_proxies", "blocked_terms", mode="before")
    @classmethod
    def _abuse_lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress  # here, not at the top: this block is the abuse settings' own

        try:
            return tuple(str(ipaddress.ip_network(v, strict=False)) for v in value)
        except ValueError as exc:
            raise ValueError(f"{exc}; use addresses or CIDRs like 10.0.0.0/8") from exc

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage(cls, value: str) -> str:
        value = value.strip()
        if not value.lower().startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("must be memory:// or redis://host:port (rediss:// for TLS)")
        return value

    @model_validator(mode="after")
    def _captcha_complete(self) -> Settings:
        if self.captcha_provider is not None and not (
            self.captcha_site_key and self.captcha_secret is not None
        ):
            raise ValueError(
                "LEADS_CAPTCHA_SITE_KEY and LEADS_CAPTCHA_SECRET are required with "
                "LEADS_CAPTCHA_PROVIDER"
            )
        return self

    # Notifications (see docs/notifications.md)
    smtp_url: SecretStr | None = Field(
        None,
        description="SMTP server for notifications: smtp://user:pass@host:587 (STARTTLS), "
        "smtps://... (implicit TLS); add ?starttls=require, auto or off.",
    )
    inbox: CommaList = Field((), description="Comma-separated addresses that receive new leads.")
    mail_from: str = Field(
        "leads@localhost", description="From address of notification emails and autoreplies."
    )
    email_api: Literal["postmark", "sendgrid", "mailgun"] | None = Field(
        None, description="Send email through this HTTP API instead of (or as well as) SMTP."
    )
    email_api_key: SecretStr | None = Field(
        None, description="API key (Postmark server token) for LEADS_EMAIL_API."
    )
    mailgun_domain: str | None = Field(None, description="Sending domain, with Mailgun.")
    email_api_base_url: str | None = Field(
        None,
        description="Override the email API's base URL (e.g. https://api.eu.mailgun.net).",
    )
    webhook_urls: CommaList = Field(
        (),
        description="Comma-separated URLs that receive signed webhooks for new leads and "
        "follow-up enquiries.",
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Standard Webhooks signing secret (whsec_...), required with webhooks."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Address staff use to reach this service; links in emails start with it.",
    )
    notify_detail: Literal["full", "contact", "minimal"] = Field(
        "full",
        description="What notification emails contain: full, contact (no message or interest), "
        "or minimal (a link only).",
    )
    autoreply: bool = Field(
        False, description="Send the visitor a short confirmation email when they gave one."
    )
    retry_base_seconds: float = Field(
        30.0, gt=0, description="First retry delay of a failed delivery; doubles each attempt."
    )
    retry_give_up_hours: float = Field(
        72.0, gt=0, description="Deliveries still failing after this long become dead letters."
    )
    dispatcher: Literal["inline", "worker"] = Field(
        "inline",
        description="inline: `leads serve` delivers notifications; worker: run `leads worker`.",
    )
    delivery_timeout_seconds: float = Field(
        15.0, gt=0, description="Time allowed for one delivery attempt (SMTP, HTTP)."
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="On shutdown, how long in-flight deliveries may take to finish."
    )

    @field_validator("inbox", "webhook_urls", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @field_validator("inbox")
    @classmethod
    def _inbox(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(a, "LEADS_INBOX") for a in value)

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        return _address(value, "LEADS_MAIL_FROM")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value.rstrip("/")

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("whsec_"):
            raise ValueError("must be a Standard Webhooks secret starting with whsec_")
        return value

    @model_validator(mode="after")
    def _channels_complete(self) -> Settings:
        email_channels = self.smtp_url is not None or self.email_api is not None
        if email_channels and not self.inbox:
            raise ValueError("LEADS_INBOX is required when an email channel is configured")
        if self.email_api is not None and self.email_api_key is None:
            raise ValueError("LEADS_EMAIL_API_KEY is required with LEADS_EMAIL_API")
        if self.email_api == "mailgun" and not self.mailgun_domain:
            raise ValueError("LEADS_MAILGUN_DOMAIN is required with LEADS_EMAIL_API=mailgun")
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("LEADS_WEBHOOK_SECRET is required with LEADS_WEBHOOK_URLS")
        return self

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        origins = _split_commas(value)
        for origin in origins:
            # "null": what sandboxed frames and some privacy settings send; refused unless listed.
            if origin not in ("*", "null") and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin like https://clinic.example")
        # Browsers send scheme and host in lowercase; compare like with like.
        return tuple(o.rstrip("/").lower() for o in origins)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """Accept plain ``postgresql://`` and ``sqlite://`` URLs; use the async drivers."""
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("is not a database URL") from exc
        backend = url.get_backend_name()
        if backend in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        elif backend == "sqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        else:
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return url.render_as_string(hide_password=False)

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region code such as US, GB or DE")
        return region

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "off":
            return "off"
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError("must look like 5/minute;30/day, or be off") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().lower()
        if level not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return level

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def public_view(self) -> dict[str, str]:
        """Every setting as text, secrets hidden, for `leads check`."""
        view: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "database_url":
                text = make_url(value).render_as_string(hide_password=True)
            elif name == "smtp_url" and value is not None:
                text = _hide_password(value.get_secret_value())
            elif name == "webhook_urls":
                text = ",".join(redact_url(url) for url in value)
            elif isinstance(value, SecretStr):
                text = "(set, hidden)"
            elif isinstance(value, tuple):
                text = ",".join(value)
            elif value is None:
                text = "(not set)"
            else:
                text = str(value)
            view[f"LEADS_{name.upper()}"] = text
        return view


def redact_url(url: str) -> str:
    """A URL fit for logs: no credentials, no query (webhook URLs often carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    hidden = "?..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + hidden


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
