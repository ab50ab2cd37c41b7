"""All configuration, read once from ``LEADS_*`` environment variables (and ``.env``).

One frozen ``Settings`` object, its fields declared by subsystem in this package:

    storage.py        the database and the secret key
    intake.py         what the intake side accepts: origins, bodies, regions, forms, queue
    server.py         the log level, and what one connection may cost
    abuse.py          spam and abuse defences
    notifications.py  channels, what notifications say, retries; opening hours, the digest
    sms.py            texts to the front desk: provider, numbers, what a text says, quiet hours
    clinic.py         the clinic's name, phone and website, as pages and emails show them
    urls.py, values.py  the checks behind the fields (URLs; lists, networks, addresses...)
    display.py        how `leads check` shows them, secrets hidden

Every value is checked as the settings load: a wrong one raises pydantic's
``ValidationError``, which ``leads`` prints as one line per setting (``error_lines``).
Every setting has a default that works on a laptop and a one-line description; the README's
configuration table is checked against them by a test.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from leads.core.clinic import ClinicIdentity, clinic_phone
from leads.settings.abuse import AbuseSettings
from leads.settings.clinic import ClinicSettings
from leads.settings.display import env_name, public_view
from leads.settings.intake import IntakeSettings
from leads.settings.notifications import NotificationSettings
from leads.settings.server import ServerSettings
from leads.settings.sms import SmsSettings
from leads.settings.storage import StorageSettings
from leads.settings.urls import redact_url

__all__ = ["GROUPS", "Settings", "error_lines", "redact_url"]

# In the order the settings are listed (README, `leads check`).
GROUPS = (
    StorageSettings,
    IntakeSettings,
    ServerSettings,
    AbuseSettings,
    NotificationSettings,
    ClinicSettings,
    SmsSettings,
)


# pydantic collects fields from the most basic class up, so the groups are listed last first.
# (ClinicSettings reads LEADS_DEFAULT_REGION, so it must come after IntakeSettings.)
class Settings(
    SmsSettings,
    ClinicSettings,
    NotificationSettings,
    AbuseSettings,
    ServerSettings,
    IntakeSettings,
    StorageSettings,
    BaseSettings,
):
    """The one settings object. Frozen: build a new one to change anything."""

    model_config = SettingsConfigDict(
        env_prefix="LEADS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
    )

    def public_view(self) -> dict[str, str]:
        """Every setting as text, secrets hidden, for `leads check`."""
        return public_view(self)

    def clinic_identity(self) -> ClinicIdentity:
        """The clinic as LEADS_CLINIC_* describe it; a form may override each value."""
        phone = clinic_phone(self.clinic_phone, self.default_region) if self.clinic_phone else None
        return ClinicIdentity(name=self.clinic_name or "", phone=phone, url=self.clinic_url)


def error_lines(error: ValidationError) -> list[str]:
    """One line per problem, naming the setting: ``LEADS_SMTP_URL: has no host``."""
    lines = []
    for problem in error.errors():
        message = " ".join(str(problem["msg"]).removeprefix("Value error, ").split())
        if problem["loc"]:
            message = f"{env_name(str(problem['loc'][0]))}: {message}"
        lines.append(message)
    return lines
