"""The table of delivery incidents (see :mod:`leads.storage.incidents`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from leads.storage.types import UTCDateTime


class DeliveryIncident(SQLModel, table=True):
    """One stretch of time when notifications were not getting through."""

    __tablename__ = "delivery_incidents"

    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    since: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    dead: int  # dead letters when it opened
    waiting: int  # pending notifications past the threshold when it opened
    channels: str = Field(max_length=100)  # the channels failing, comma-separated
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
