"""The checks for absolute http(s) URLs, shared by the settings and the forms file, and how
a URL is shown without its secrets."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def no_blanks(value: str) -> None:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("contains spaces or control characters")


def port_of(url: str) -> int | None:
    try:
        port = urlsplit(url).port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("has a port that is not a number from 1 to 65535")
    return port


def web_url(value: str, *, query: bool = True) -> str:
    """An absolute http(s) URL with a host; raises ValueError with a short reason."""
    value = value.strip()
    no_blanks(value)
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("has no host")
    port_of(value)
    if not query and (parts.query or parts.fragment):
        raise ValueError("must not have a query or fragment")
    return value


def redact_url(url: str) -> str:
    """A URL fit for logs: no credentials, no query (webhook URLs often carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    hidden = "?..." if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + hidden


def webhook_url(value: str) -> str:
    """A URL that receives webhooks (LEADS_WEBHOOK_URLS, a form's ``webhook_urls``): an
    http(s) URL; the ValueError's reason names it redacted, never its query or password."""
    try:
        return web_url(value)
    except ValueError as exc:
        raise ValueError(f"{redact_url(value)!r} {exc}") from None
