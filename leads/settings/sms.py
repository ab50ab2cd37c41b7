"""Texts to the front desk (see docs/notifications.md): the SMS provider, its account, the
sender, the staff numbers, what a text says, and quiet hours."""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from leads.core.contacts import e164_number
from leads.core.quiet import parse_span
from leads.settings import urls, values
from leads.settings.values import CommaList

# A Twilio Messaging Service's SID: texts then go from its pool of numbers.
MESSAGING_SERVICE = re.compile(r"MG[0-9a-fA-F]{32}")
# An alphanumeric sender ID (where the country allows one): letters, digits, spaces.
ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")


class SmsSettings(BaseModel):
    sms_provider: Literal["twilio", "vonage"] | None = Field(
        None,
        description="Text the front desk about each new lead through twilio or vonage; "
        "unset = no texts.",
    )
    sms_account: str | None = Field(
        None, description="The provider account: Twilio Account SID (AC...) or Vonage API key."
    )
    sms_token: SecretStr | None = Field(None, description="Twilio Auth Token or Vonage API secret.")
    sms_from: str | None = Field(
        None,
        description="Sender: an E.164 number, a Twilio Messaging Service SID (MG...), or an "
        "alphanumeric sender ID where allowed.",
    )
    sms_to: CommaList = Field(
        (), description="Comma-separated E.164 numbers of the staff who get a text per new lead."
    )
    sms_detail: Literal["minimal", "contact"] = Field(
        "minimal",
        description="What a text says: minimal (form, first name, link) or contact (adds the "
        "visitor's phone).",
    )
    sms_quiet_hours: str | None = Field(
        None,
        description="HH:MM-HH:MM in LEADS_TIMEZONE (may span midnight, e.g. 20:00-07:30): texts "
        "due then wait until it ends; unset = none.",
    )
    sms_base_url: str | None = Field(
        None,
        description="Override the SMS provider's base URL (a self-hosted gateway, or tests).",
    )

    @field_validator("sms_to", mode="before")
    @classmethod
    def _sms_list(cls, value: Any) -> Any:
        return values.split_commas(value)

    @field_validator("sms_to")
    @classmethod
    def _sms_to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        numbers = tuple(e164_number(number) for number in value)
        return tuple(dict.fromkeys(numbers))  # one text per number, however often listed

    @field_validator("sms_account")
    @classmethod
    def _sms_account(cls, value: str | None) -> str | None:
        return None if value is None else values.token(value)

    @field_validator("sms_token")
    @classmethod
    def _sms_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            values.token(value.get_secret_value())
        return value

    @field_validator("sms_from")
    @classmethod
    def _sms_from(cls, value: str | None) -> str | None:
        if value is None:
            return None
        sender = value.strip()
        if sender.startswith("+"):
            return e164_number(sender)
        if MESSAGING_SERVICE.fullmatch(sender) or ALPHANUMERIC_SENDER.fullmatch(sender):
            return sender
        raise ValueError(
            "must be an E.164 number such as +12025550123, a Messaging Service SID (MG...) "
            "or an alphanumeric sender ID of up to 11 letters and digits"
        )

    @field_validator("sms_quiet_hours")
    @classmethod
    def _sms_quiet_hours(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_span(value)
        return value.replace(" ", "")

    @field_validator("sms_base_url")
    @classmethod
    def _sms_base_url(cls, value: str | None) -> str | None:
        return None if value is None else urls.web_url(value, query=False).rstrip("/")

    @model_validator(mode="after")
    def _sms_complete(self) -> Self:
        if self.sms_provider is None:
            return self
        for name in ("sms_account", "sms_token", "sms_from"):
            if getattr(self, name) is None:
                raise ValueError(f"LEADS_{name.upper()} is required with LEADS_SMS_PROVIDER")
        if not self.sms_to:
            raise ValueError("LEADS_SMS_TO is required with LEADS_SMS_PROVIDER")
        if self.sms_provider == "vonage" and MESSAGING_SERVICE.fullmatch(self.sms_from or ""):
            raise ValueError("LEADS_SMS_FROM: a Messaging Service SID (MG...) is Twilio's")
        return self
