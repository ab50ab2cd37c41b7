"""The server process: its log, what one connection may cost (leads/web/connections.py),
how long a staff session lasts (leads/staff/sessions.py), and who may read its metrics
(leads/web/metrics.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from leads.settings import values


class ServerSettings(BaseModel):
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
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
    session_idle_minutes: int = Field(
        60,
        ge=1,
        le=1440,
        description="A staff session ends after this many minutes without a request.",
    )
    session_max_hours: int = Field(
        12,
        ge=1,
        le=720,
        description="A staff session ends this many hours after signing in, however busy.",
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="Log lines as json (one object per line) or text; auto: text when "
        "standard error is a terminal, else json.",
    )

    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that /metrics asks for (16 characters or more); "
        "unset (and no LEADS_METRICS_BIND): /metrics answers 404.",
    )
    metrics_bind: str | None = Field(
        None,
        description="host:port of a listener that `leads serve` opens for /metrics alone "
        "(asking for no token unless LEADS_METRICS_TOKEN is set); /metrics on the main port "
        "then answers 404.",
    )

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            values.secret_key(value.get_secret_value())
        return value

    @field_validator("metrics_bind")
    @classmethod
    def _metrics_bind(cls, value: str | None) -> str | None:
        return None if value is None else values.listen_address(value)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        return values.log_level(value)
