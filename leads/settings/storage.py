"""Where leads are kept, and for how long: the database, the key that signs form tokens,
and the retention periods (see docs/privacy.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

from leads.settings import urls, values


class StorageSettings(BaseModel):
    database_url: str = Field(
        "sqlite+aiosqlite:///./leads.db",
        description="Database URL: SQLite file (default) or postgresql://user:pass@host/db.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key for signing tokens. SQLite: generated once beside the database if "
        "unset. PostgreSQL: required.",
    )
    database_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="How long to wait for the database before answering 503."
    )
    retention_days: int = Field(
        730,
        gt=0,
        le=36500,
        description="Days a lead is kept after its last activity (enquiry, change or note), "
        "with everything of it; then it is purged.",
    )
    spam_retention_days: int = Field(
        30,
        gt=0,
        le=36500,
        description="Days a lead in the spam folder is kept after its last activity.",
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return urls.database_url(value)

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            values.secret_key(value.get_secret_value())
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
