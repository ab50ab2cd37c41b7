"""What the intake side accepts: origins, bodies, phone regions, forms, the write queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from leads.settings import urls, values
from leads.settings.values import CommaList


class IntakeSettings(BaseModel):
    default_region: str = Field(
        "US", description="Region (ISO 3166 code) for phone numbers written without +country."
    )
    allowed_origins: CommaList = Field(
        (),
        description="Comma-separated web origins allowed to call the API from a browser; "
        "empty = none; `null` admits pages that send `Origin: null`.",
    )
    max_body_bytes: int = Field(
        16384, gt=0, le=67108864, description="Largest accepted submission body, in bytes."
    )
    forms_file: Path | None = Field(
        None, description="Optional TOML or JSON file defining forms (see docs/forms.md)."
    )
    intake_queue_size: int = Field(
        1000,
        gt=0,
        le=1000000,
        description="Submissions waiting to be written, at most; beyond it: 503 Retry-After.",
    )

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        return values.region(value)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        origins = values.split_commas(value)
        if isinstance(origins, (tuple, list)):
            return tuple(urls.origin(str(o)) for o in origins)
        return origins

    @field_validator("forms_file")
    @classmethod
    def _forms_file(cls, value: Path | None) -> Path | None:
        return None if value is None else values.readable_file(value)
