"""Telling the clinic (see docs/notifications.md): channels, what they say, retries."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from leads.core.contacts import inbox_address  # shared with the forms file
from leads.core.hours import ALWAYS, OpeningHours
from leads.settings import urls, values
from leads.settings.values import CommaList


class NotificationSettings(BaseModel):
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
        30.0,
        gt=0,
        le=3600,
        description="First retry delay of a failed delivery; doubles each attempt.",
    )
    retry_give_up_hours: float = Field(
        72.0,
        gt=0,
        le=8760,
        description="Deliveries still failing after this long become dead letters.",
    )
    dispatcher: Literal["inline", "worker"] = Field(
        "inline",
        description="inline: `leads serve` delivers notifications; worker: run `leads worker`.",
    )
    delivery_timeout_seconds: float = Field(
        15.0, gt=0, le=300, description="Time allowed for one delivery attempt (SMTP, HTTP)."
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="On shutdown, how long in-flight deliveries may take to finish.",
    )

    timezone: str = Field(
        "UTC",
        description="IANA time zone (e.g. America/New_York) of the times in notification "
        "emails; webhooks keep UTC.",
    )

    # The speed-to-lead clock (docs/operations.md) and the daily digest of overdue leads.
    opening_hours: str = Field(
        ALWAYS,
        description="When the clinic answers leads, in LEADS_TIMEZONE, e.g. "
        "`Mon-Fri 08:00-18:00; Sat 09:00-12:00`; the follow-up deadline counts only these.",
    )
    follow_up_hours: float = Field(
        4.0,
        gt=0,
        le=1000,
        description="Opening hours a new lead may wait for its first response before it is "
        "overdue.",
    )
    digest_at: str | None = Field(
        None,
        description="HH:MM (LEADS_TIMEZONE) on opening days to email LEADS_INBOX the overdue "
        "leads; unset = no digest.",
    )
    alert_after_minutes: int = Field(
        15,
        ge=1,
        le=1440,
        description="Tell the admins through the other channels when a notification is a "
        "dead letter or has waited this many minutes.",
    )

    def opening(self) -> OpeningHours:
        """LEADS_OPENING_HOURS read, in LEADS_TIMEZONE."""
        return OpeningHours.parse(self.opening_hours, self.timezone)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else SecretStr(urls.smtp_url(value.get_secret_value()))

    @field_validator("inbox", "webhook_urls", mode="before")
    @classmethod
    def _notification_lists(cls, value: Any) -> Any:
        return values.split_commas(value)

    @field_validator("inbox")
    @classmethod
    def _inbox(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(inbox_address(a) for a in value)

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        return inbox_address(value)

    @field_validator("email_api_key")
    @classmethod
    def _email_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            values.token(value.get_secret_value())
        return value

    @field_validator("mailgun_domain")
    @classmethod
    def _mailgun_domain(cls, value: str | None) -> str | None:
        return None if value is None else values.domain(value)

    @field_validator("email_api_base_url")
    @classmethod
    def _email_api_base_url(cls, value: str | None) -> str | None:
        return None if value is None else urls.web_url(value, query=False)

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            urls.webhook_url(url)  # the forms file's webhook_urls are checked the same way
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            values.webhook_secret(value.get_secret_value())
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return urls.web_url(value, query=False).rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return values.timezone(value)

    @field_validator("opening_hours")
    @classmethod
    def _opening_hours(cls, value: str) -> str:
        OpeningHours.parse(value)  # the zone is checked on its own
        return value.strip()

    @field_validator("digest_at")
    @classmethod
    def _digest_at(cls, value: str | None) -> str | None:
        return None if value is None else values.clock_time(value)

    @model_validator(mode="after")
    def _channels_complete(self) -> Self:
        email_channels = self.smtp_url is not None or self.email_api is not None
        if email_channels and not self.inbox:
            raise ValueError("LEADS_INBOX is required when an email channel is configured")
        if self.email_api is not None and self.email_api_key is None:
            raise ValueError("LEADS_EMAIL_API_KEY is required with LEADS_EMAIL_API")
        if self.email_api == "mailgun" and not self.mailgun_domain:
            raise ValueError("LEADS_MAILGUN_DOMAIN is required with LEADS_EMAIL_API=mailgun")
        if self.digest_at is not None and not email_channels:
            raise ValueError(
                "LEADS_DIGEST_AT needs an email channel (LEADS_SMTP_URL or LEADS_EMAIL_API)"
            )
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("LEADS_WEBHOOK_SECRET is required with LEADS_WEBHOOK_URLS")
        return self
