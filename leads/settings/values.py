"""Checks for the settings that are not URLs: lists, networks, rates, names (addresses are
checked by :func:`leads.core.contacts.inbox_address`, shared with the forms file).

Each check returns the value to keep or raises ``ValueError`` with a short reason; pydantic
adds the setting's name, and ``leads`` prints the two as one line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from limits import parse_many
from pydantic_settings import NoDecode

# A comma-separated list in the environment; NoDecode: not parsed as JSON first.
CommaList = Annotated[tuple[str, ...], NoDecode]

LOG_LEVELS = ("debug", "info", "warning", "error")
MIN_SECRET_KEY_LENGTH = 16  # the same floor as leads.keys, for keys read from a file
_DOMAIN_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)


def split_commas(value: Any) -> Any:
    """``"a, b,,c"`` → ``("a", "b", "c")``; anything but a string is left for pydantic."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def has_blanks(value: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value)


def token(value: str) -> str:
    """A key or id handed to a service as is: no spaces or control characters in it."""
    if has_blanks(value):
        raise ValueError("must not contain spaces or control characters")
    return value


def secret_key(value: str) -> str:
    token(value)
    if len(value) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(
            f"is too short (at least {MIN_SECRET_KEY_LENGTH} characters); use the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return value


def domain(value: str) -> str:
    """A DNS name such as ``mg.clinic.example``."""
    name = value.strip().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{value!r} is not a domain name such as mg.clinic.example")
    return name


def networks(values: tuple[str, ...]) -> tuple[str, ...]:
    """Addresses or CIDRs, written in their canonical form (``10.0.0.1`` → ``10.0.0.1/32``)."""
    try:
        return tuple(str(ipaddress.ip_network(v, strict=False)) for v in values)
    except ValueError as exc:
        raise ValueError(f"{exc}; use addresses or CIDRs like 10.0.0.0/8") from exc


def terms(values: tuple[str, ...]) -> tuple[str, ...]:
    """Words or phrases to look for, each with a letter or digit in it."""
    for term in values:
        if ";" in term or has_blanks(term.replace(" ", "")):
            raise ValueError(f"{term!r} has a semicolon or control character; separate with commas")
        if not any(c.isalnum() for c in term):
            raise ValueError(f"{term!r} has no letter or digit in it")
    return values


def region(value: str) -> str:
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region code such as US, GB or DE")
    return code


def rate_limit(value: str) -> str:
    value = value.strip()
    if value.lower() == "off":
        return "off"
    try:
        limits = parse_many(value)
    except ValueError as exc:
        raise ValueError("must look like 5/minute;30/day, or be off") from exc
    if any(limit.amount < 1 for limit in limits):
        raise ValueError("allows no submission at all; use off, or a number of at least 1")
    return value


def log_level(value: str) -> str:
    level = value.strip().lower()
    if level not in LOG_LEVELS:
        raise ValueError("must be debug, info, warning or error")
    return level


def timezone(value: str) -> str:
    """An IANA time zone name such as ``Europe/Berlin`` or ``UTC``, kept as written."""
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError: not a name at all (empty, absolute or with ".." in it).
        raise ValueError("must be an IANA time zone name such as UTC or America/New_York") from None
    return name


def clock_time(value: str) -> str:
    """A time of day as ``HH:MM`` (24-hour clock), such as ``07:30``."""
    name = value.strip()
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", name):
        raise ValueError("must be a time of day as HH:MM, such as 07:30")
    return name


def webhook_secret(value: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and the key in base64."""
    key = value.removeprefix("whsec_")
    if key == value:
        raise ValueError("must be a Standard Webhooks secret starting with whsec_")
    try:
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by the key in base64") from None
    if not decoded:
        raise ValueError("has no key after whsec_")
    return value


def listen_address(value: str) -> str:
    """Where a server listens, as ``host:port``: ``127.0.0.1:9100``, ``[::1]:9100``."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or has_blanks(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("must be host:port, such as 127.0.0.1:9100")
    return value.strip()


def readable_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{str(path)!r} cannot be read")
    return path
