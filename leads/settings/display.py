"""Settings as `leads check` prints them: every one as text, secrets hidden."""

from __future__ import annotations

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
    if isinstance(value, SecretStr):
        return "(set, hidden)"
    if isinstance(value, tuple):
        return ",".join(value)
    if value is None:
        return "(not set)"
    return str(value)


def public_view(settings: BaseModel) -> dict[str, str]:
    """Every setting as text, secrets hidden, in the order the settings are declared."""
    return {
        env_name(name): shown(name, getattr(settings, name)) for name in type(settings).model_fields
    }
