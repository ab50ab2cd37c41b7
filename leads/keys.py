"""The secret key: required with PostgreSQL; with SQLite, generated once and kept beside
the database file (readable by its owner only), so a laptop install needs no setup."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
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

MIN_KEY_LENGTH = 16


def key_file_for(settings: Settings) -> Path | None:
    path = sqlite_path(settings.database_url)
    return None if path is None else path.with_name(path.name + ".secret")


def with_secret_key(settings: Settings) -> Settings:
    """The settings with a secret key, generating and keeping one where that is allowed."""
    if settings.secret_key is not None:
        if len(settings.secret_key.get_secret_value()) < MIN_KEY_LENGTH:
            raise ConfigurationError(f"LEADS_SECRET_KEY is too short; {HOW_TO}")
        return settings
    if not settings.is_sqlite:
        raise ConfigurationError(f"LEADS_SECRET_KEY is required with PostgreSQL: {HOW_TO}")
    path = key_file_for(settings)
    if path is None:  # in-memory database: a key for this process only
        return settings.model_copy(update={"secret_key": SecretStr(secrets.token_urlsafe(32))})
    return settings.model_copy(update={"secret_key": SecretStr(_read_or_create(path))})


def _read_or_create(path: Path) -> str:
    key = _read(path)
    if key is not None:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    # Written whole to a private temporary file, then linked into place: link() fails if the
    # key file exists, so when several processes start at once exactly one key wins, and
    # nobody can read a file that is created but not yet written.
    fd, scratch = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        os.link(scratch, path)
    except FileExistsError:
        return _read_or_create(path)  # another process's key, now complete
    finally:
        os.unlink(scratch)
    log.warning(
        "LEADS_SECRET_KEY is not set: generated one and kept it in %s. "
        "Back this file up with the database, or set LEADS_SECRET_KEY.",
        path,
    )
    return key


def _read(path: Path) -> str | None:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigurationError(f"the key in {path} is too short: delete the file, or {HOW_TO}")
    return key
