"""Spam and abuse defences (leads/abuse/): rate limits, the time trap, captcha, content, tarpit."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from leads.settings import urls, values
from leads.settings.values import CommaList


class AbuseSettings(BaseModel):
    rate_limit: str = Field(
        "5/minute;30/day",
        description="Submissions allowed per client, as `N/period;N/period`; `off` disables.",
    )
    min_fill_seconds: float = Field(
        3.0,
        ge=0,
        le=3600,
        description="Forms submitted sooner than this after being served are spam.",
    )
    require_form_token: bool = Field(
        False,
        description="Flag submissions without a form token (JSON and form posts) as spam.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate limits are counted: memory:// (one process) or "
        "redis://host:6379 (shared by all instances).",
    )
    trusted_proxies: CommaList = Field(
        (),
        description="Comma-separated proxy addresses or CIDRs whose X-Forwarded-For is "
        "believed; empty = none.",
    )
    captcha_provider: Literal["turnstile", "hcaptcha", "recaptcha"] | None = Field(
        None, description="Optional captcha on forms: turnstile, hcaptcha or recaptcha (v3)."
    )
    captcha_site_key: str | None = Field(
        None, description="The captcha's public site key, required with a provider."
    )
    captcha_secret: SecretStr | None = Field(
        None, description="The captcha's secret key, required with a provider."
    )
    captcha_min_score: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Lowest reCAPTCHA v3 (or hCaptcha Enterprise) score accepted as human, 0-1.",
    )
    captcha_fail_open: bool = Field(
        True,
        description="When the captcha service cannot be reached, accept the submission "
        "(true) or flag it as spam (false).",
    )
    captcha_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="How long to wait for the captcha service's verdict."
    )
    blocked_terms: CommaList = Field(
        (), description="Comma-separated words or phrases that mark a submission as spam."
    )
    max_links: int = Field(
        3, ge=0, le=1000, description="Messages with more links than this are flagged as spam."
    )
    tarpit_seconds: float = Field(
        1.0,
        ge=0,
        le=5,
        description="Answers to rate-limited and spam-flagged submissions wait 1-2 times "
        "this long, so a flooding client gets at most one answer per connection per "
        "interval; 0 = at once.",
    )
    tarpit_capacity: int = Field(
        1000,
        gt=0,
        le=1000000,
        description="Answers held in the tarpit at most; beyond it they are sent at once "
        "and the connection closed.",
    )

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        return values.rate_limit(value)

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage(cls, value: str) -> str:
        return urls.rate_limit_storage(value)

    @field_validator("trusted_proxies", "blocked_terms", mode="before")
    @classmethod
    def _abuse_lists(cls, value: Any) -> Any:
        return values.split_commas(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return values.networks(value)

    @field_validator("blocked_terms")
    @classmethod
    def _blocked_terms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return values.terms(value)

    @field_validator("captcha_site_key")
    @classmethod
    def _site_key(cls, value: str | None) -> str | None:
        return None if value is None else values.token(value)

    @field_validator("captcha_secret")
    @classmethod
    def _captcha_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            values.token(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _captcha_complete(self) -> Self:
        if self.captcha_provider is not None and not (
            self.captcha_site_key and self.captcha_secret is not None
        ):
            raise ValueError(
                "LEADS_CAPTCHA_SITE_KEY and LEADS_CAPTCHA_SECRET are required with "
                "LEADS_CAPTCHA_PROVIDER"
            )
        return self
