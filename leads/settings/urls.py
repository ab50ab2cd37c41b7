"""Checks for the URL-valued settings, and how URLs are shown without their secrets.

Each check takes the text of one setting and returns the value to keep, or raises
``ValueError`` with a short reason; pydantic adds the setting's name. A reason never repeats
a URL's password or query, since those are where secrets live.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from leads.core.weburls import no_blanks as _no_blanks
from leads.core.weburls import port_of as _port_of
from leads.core.weburls import redact_url as redact_url  # shared with the forms file
from leads.core.weburls import web_url as web_url  # shared with the forms file
from leads.core.weburls import webhook_url as webhook_url

SMTP_STARTTLS_MODES = ("require", "auto", "off")


def origin(value: str) -> str:
    """A web origin, ``scheme://host[:port]``, lowercased as browsers send it."""
    # "null": what sandboxed frames and some privacy settings send; refused unless listed.
    if value in ("*", "null"):
        return value
    try:
        web_url(value, query=False)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an origin like https://clinic.example") from exc
    parts = urlsplit(value)
    if parts.path not in ("", "/") or parts.username is not None:
        raise ValueError(
            f"{value!r} is not an origin: no path or user, like https://clinic.example"
        )
    return value.rstrip("/").lower()


def smtp_url(value: str) -> str:
    """``smtp://user:pass@host:port`` or ``smtps://...``, with an optional ``?starttls=``."""
    value = value.strip()
    _no_blanks(value)
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("must start with smtp:// or smtps://, like smtp://user:pass@host:587")
    if not parts.hostname:
        raise ValueError("has no host; it looks like smtp://user:pass@host:587")
    _port_of(value)
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("must not have a path; it looks like smtp://user:pass@host:587")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(options) - {"starttls"})
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; the only one is ?starttls=")
    modes = options.get("starttls", ["auto"])
    if len(modes) != 1 or modes[0] not in SMTP_STARTTLS_MODES:
        raise ValueError("starttls must be require, auto or off")
    return value


def rate_limit_storage(value: str) -> str:
    """``memory://``, or a Redis server: ``redis://host:port/db`` (``rediss://`` for TLS)."""
    value = value.strip()
    _no_blanks(value)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "memory" and value.lower() == "memory://":
        return value
    if scheme not in ("redis", "rediss"):
        raise ValueError("must be memory:// or redis://host:port (rediss:// for TLS)")
    if not parts.hostname:
        raise ValueError("has no host; it looks like redis://host:6379")
    _port_of(value)
    if parts.path.strip("/") and not parts.path.strip("/").isdigit():
        raise ValueError("the path must be a database number, like redis://host:6379/0")
    return value


def database_url(value: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite://`` URLs; use the async drivers."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError) as exc:
        raise ValueError("is not a database URL") from exc
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError("must be a sqlite:// or postgresql:// URL")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError("has a port that is not a number from 1 to 65535")
    return url.render_as_string(hide_password=False)


def hide_password(url: str) -> str:
    """The URL with its password (if any) shown as ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def hide_database_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
