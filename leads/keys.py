"""The secret key: required with PostgreSQL; with SQLite, generated once and kept beside
the database file (readable by its owner only), so a laptop install needs no setup."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from leads.errors import ConfigurationError
from leads.settings import Settings
from leads.storage.database import sqlite_path

log = logging.getLogger("leads")

HOW_TO = (
    "set LEADS_SECRET_KEY to a long random value, for example the output of "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
)


def key_file_for(settings: Settings) -> Path | None:
    path = sqlite_path(settings.database_url)
    return None if path is None else path.with_name(path.name + ".secret")


def with_secret_key(settings: Settings) -> Settings:
    """The settings with a secret key, generating and keeping one where that is allowed."""
    if settings.secret_key is not None:
        if len(settings.secret_key.get_secret_value()) < 16:
            raise ConfigurationError(f"LEADS_SECRET_KEY is too short; {HOW_TO}")
        return settings
    if not settings.is_sqlite:
        raise ConfigurationError(f"LEADS_SECRET_KEY is required with PostgreSQL: {HOW_TO}")
    path = key_file_for(settings)
    if path is None:  # in-memory database: a key for this process only
        return settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(32))})
    return settings.model_copy(update={"secret_key": SecretStr(_read_or_create(path))})


def _read_or_create(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        # O_EXCL: when several workers start at once, exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    log.warning(
        "LEADS_SECRET_KEY is not set: generated one and kept it in %s. "
        "Back this file up with the database, or set LEADS_SECRET_KEY.",
        path,
    )
    return key
