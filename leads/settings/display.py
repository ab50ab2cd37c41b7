"""Settings as `leads check` prints them: every one as text, secrets hidden."""

from __future__ import annotations

from email.utils import parseaddr

from pydantic import BaseModel, SecretStr

from leads.settings.urls import hide_database_password, hide_password, redact_url


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``smtp_url`` → ``LEADS_SMTP_URL``."""
    return f"LEADS_{field.upper()}"


def shown(name: str, value: object) -> str:
    """One setting's value as text, with passwords, tokens and secrets hidden."""
    if name == "database_url" and isinstance(value, str):
        return hide_database_password(value)
    if name == "smtp_url" and isinstance(value, SecretStr):
        return hide_password(value.get_secret_value())
    if name == "webhook_urls" and isinstance(value, tuple):
        return ",".join(redact_url(url) for url in value)
    if name == "sms_to" and isinstance(value, tuple):
        return ",".join(masked_number(number) for number in value)
    if isinstance(value, SecretStr):
        return "(set, hidden)"
    if isinstance(value, tuple):
        return ",".join(value)
    if value is None:
        return "(not set)"
    return str(value)


# The order `leads check` prints the settings in: the order they were added in, kept as it
# was when the settings were grouped (scripts may read the output). A new setting goes last.
CHECK_ORDER = (
    "database_url", "secret_key", "default_region", "allowed_origins", "max_body_bytes",
    "rate_limit", "forms_file", "database_timeout_seconds", "log_level", "intake_queue_size",
    "header_timeout_seconds", "body_timeout_seconds", "max_header_bytes", "max_headers",
    "max_connections", "min_fill_seconds", "require_form_token", "rate_limit_storage",
    "trusted_proxies", "captcha_provider", "captcha_site_key", "captcha_secret",
    "captcha_min_score", "captcha_fail_open", "captcha_timeout_seconds", "blocked_terms",
    "max_links", "tarpit_seconds", "tarpit_capacity", "smtp_url", "inbox", "mail_from",
    "email_api", "email_api_key", "mailgun_domain", "email_api_base_url", "webhook_urls",
    "webhook_secret", "public_url", "notify_detail", "autoreply", "retry_base_seconds",
    "retry_give_up_hours", "dispatcher", "delivery_timeout_seconds", "shutdown_grace_seconds",
    "timezone", "clinic_name", "clinic_phone", "clinic_url", "session_idle_minutes",
    "session_max_hours",
    "opening_hours", "follow_up_hours", "digest_at", "retention_days", "spam_retention_days",
    "metrics_token", "metrics_bind",
    "log_format", "alert_after_minutes",
    "sms_provider", "sms_account", "sms_token", "sms_from", "sms_to", "sms_detail",
    "sms_quiet_hours", "sms_base_url",
    "language", "negotiate_language",
)  # fmt: skip


def masked_number(number: str) -> str:
    """A phone number as output shows it: only its last 3 digits (``*********123``)."""
    return "*" * max(len(number) - 3, 0) + number[-3:]


def masked_address(address: str) -> str:
    """An email address as output shows it: its first letter and its domain
    (``s***@clinic.example``)."""
    local, _, domain = parseaddr(address)[1].rpartition("@")
    return f"{local[:1]}***@{domain}"


def shown_target(channel: str, target: str) -> str:
    """An outbox row's target as output shows it: a text's number masked, a form's inbox
    addresses masked, a URL redacted."""
    if channel == "sms":
        return masked_number(target)
    if channel in ("smtp", "email_api"):
        return ", ".join(masked_address(a) for a in target.split(","))
    return redact_url(target)


def public_view(settings: BaseModel) -> dict[str, str]:
    """Every setting as text, secrets hidden, in :data:`CHECK_ORDER` (any setting missing
    from it after the rest)."""
    fields = type(settings).model_fields
    order = [*CHECK_ORDER, *(name for name in fields if name not in CHECK_ORDER)]
    return {env_name(name): shown(name, getattr(settings, name)) for name in order}
