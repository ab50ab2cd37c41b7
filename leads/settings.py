"""All configuration, read once from ``LEADS_*`` environment variables (and ``.env``).

Every setting has a default that works on a laptop and a one-line description; the README's
configuration table is checked against this class by a test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import phonenumbers
from limits import parse_many
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
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
        "empty = none.",
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

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        origins = _split_commas(value)
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin like https://clinic.example")
        return tuple(o.rstrip("/") for o in origins)

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
