"""How leads logs: one format, to standard error, at LEADS_LOG_LEVEL.

LEADS_LOG_FORMAT says which: ``json`` (one object per line, for a log collector), ``text``
(a readable line), or ``auto`` (the default: text when standard error is a terminal, JSON
otherwise, as under systemd or Docker). Every JSON line has ``time`` (ISO 8601, UTC),
``level``, ``logger`` and ``message``; an *event* line adds its own fields, passed as
``log.info(..., extra=event("request", route=..., status=...))`` and written as
``key=value`` pairs after the message in text. Two events are logged: ``request`` (one per
HTTP request, :mod:`leads.web.requestlog`) and ``delivery`` (one per delivery attempt,
:mod:`leads.notify.delivery`).

Every process that logs configures it: the `leads` command when it starts, and each server
process when it builds the app (uvicorn's worker processes are spawned, so they inherit
nothing the parent configured). No log line carries what a visitor or a member of staff
typed: messages name ids, codes and counts only (tests/test_log_privacy.py looks).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

EVENT_FIELDS = "leads_event_fields"  # the LogRecord attribute an event's fields travel in


def event(name: str, **fields: object) -> dict[str, Any]:
    """``extra=`` for a log call that is an event: its name and fields, kept together."""
    return {EVENT_FIELDS: {"event": name, **fields}}


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSONFormatter(logging.Formatter):
    """One JSON object per line; an exception is its type and where it was raised, never
    its text (that can quote what a visitor typed)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, EVENT_FIELDS, {}))
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = _exception(record)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, EVENT_FIELDS, {})
        pairs = "".join(f" {key}={value}" for key, value in fields.items() if key != "event")
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}{pairs}"
        if record.exc_info and record.exc_info[0] is not None:
            line += f" ({_exception(record)})"
        return line


def _exception(record: logging.LogRecord) -> str:
    kind, _, traceback = record.exc_info or (None, None, None)
    where = ""
    while traceback is not None:
        code = traceback.tb_frame.f_code
        where = f" at {code.co_filename}:{traceback.tb_lineno}"
        traceback = traceback.tb_next
    return f"{kind.__name__ if kind else '?'}{where}"


def resolve_format(log_format: str) -> str:
    """``auto`` → ``text`` on a terminal, ``json`` otherwise."""
    if log_format != "auto":
        return log_format
    return "text" if sys.stderr.isatty() else "json"


def formatter_for(log_format: str) -> logging.Formatter:
    return TextFormatter() if resolve_format(log_format) == "text" else JSONFormatter()


def configure_logging(level: str, log_format: str = "auto") -> None:
    """Once per process: a later call (the app built in the process `leads` runs in) is a
    no-op, as is any call once the root logger has a handler. uvicorn's loggers go through
    the same handler; its access log is off, since :mod:`leads.web.requestlog` logs each
    request once, with its route rather than its path."""
    root = logging.getLogger()
    if root.handlers:  # configured already (as logging.basicConfig, it changes nothing then)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    access.disabled = True
    if level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # httpx logs every request's full URL at INFO; a webhook URL can carry a secret token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    # Even at debug: these quote what they send and receive (SMTP commands name the
    # recipients; httpcore and asyncio's debug lines can show request bodies).
    # SQLAlchemy logs every statement with its parameters once its logger allows INFO.
    for noisy in (
        "sqlalchemy",
        "aiosmtplib",
        "httpcore",
        "hpack",
        "asyncio",
        "aiosqlite",
        "multipart",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def uvicorn_log_config() -> dict[str, Any]:
    """``uvicorn.run(log_config=...)``: leave logging to :func:`configure_logging`, which
    every server process runs as it builds its app (uvicorn would otherwise install its own
    handlers and its access log)."""
    return {"version": 1, "disable_existing_loggers": False}
