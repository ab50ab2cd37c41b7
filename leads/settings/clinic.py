"""Who the pages and the emails say the visitor is dealing with: the clinic's identity, and
the language it speaks to visitors and its staff in."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from leads.core import clinic
from leads.core.vocabulary import Language


class ClinicSettings(BaseModel):
    clinic_name: str | None = Field(
        None,
        description="The clinic's name, shown on the pages, signing the autoreply and as "
        'the emails\' From name; not set = "the clinic".',
    )
    clinic_phone: str | None = Field(
        None,
        description="The clinic's phone number, read in LEADS_DEFAULT_REGION and kept in "
        "E.164; the pages link it for tap-to-call.",
    )
    clinic_url: str | None = Field(
        None,
        description="The clinic's own website (http or https); the thank-you and error "
        "pages link back to it.",
    )

    language: Language = Field(
        Language.EN,
        description="The clinic's language (en, es or de): its forms' unless a form names "
        "its own, and the staff's notification emails.",
    )
    negotiate_language: bool = Field(
        False,
        description="Let a visitor's browser (Accept-Language) choose among the shipped "
        "languages; others get the form's language.",
    )

    @field_validator("clinic_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return (clinic.clinic_name(value) or None) if value is not None else None

    @field_validator("clinic_phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        # Validated before this group (see leads.settings.Settings); a bad region is its
        # own error, and the number is then read as if written with +country.
        region = info.data.get("default_region") or "ZZ"
        return clinic.clinic_phone(value, region).e164

    @field_validator("clinic_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return clinic.clinic_url(value)
