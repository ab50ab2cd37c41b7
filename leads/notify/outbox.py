"""Which outbox messages a stored submission produces. Called inside the intake transaction,
so a lead and its notifications are committed together or not at all."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from leads.core.routing import FormRouting
from leads.core.vocabulary import MessageKind, OutboxStatus
from leads.notify.channels import builtin_channels
from leads.settings import Settings
from leads.storage.models import OutboxMessage


def messages_for(
    settings: Settings,
    *,
    lead_id: uuid.UUID,
    enquiry_id: uuid.UUID | None,
    visitor_email: str | None,
    routing: FormRouting,
    now: datetime,
) -> list[OutboxMessage]:
    """One message per route of the channels these settings and the form's ``routing``
    give (a form's own inbox or webhook URLs over the settings'); plus the visitor's
    autoreply for a new lead when enabled. Spam gets none (one row per flagged submission,
    no more): `leads spam release` writes a released lead's messages then, without the
    autoreply."""
    return [
        OutboxMessage(**row)
        for row in message_rows_for(
            settings,
            lead_id=lead_id,
            enquiry_id=enquiry_id,
            visitor_email=visitor_email,
            routing=routing,
            now=now,
        )
    ]


def message_rows_for(
    settings: Settings,
    *,
    lead_id: uuid.UUID,
    enquiry_id: uuid.UUID | None,
    visitor_email: str | None,
    routing: FormRouting,
    now: datetime,
) -> list[dict[str, Any]]:
    """The same messages as :func:`messages_for`, as rows for one multi-row INSERT (the
    intake's hot path: no ORM object per message). Every row has the same columns."""
    kind = MessageKind.LEAD_CREATED if enquiry_id is None else MessageKind.ENQUIRY_ADDED
    channels = builtin_channels()
    routes = [
        (kind, route.channel, route.target) for route in channels.routes_for(settings, routing)
    ]
    autoreply = channels.autoreply_route(settings)
    if settings.autoreply and autoreply and visitor_email and enquiry_id is None:
        routes.append((MessageKind.AUTOREPLY, autoreply.channel, None))
    return [
        {
            "id": uuid.uuid4(),
            "lead_id": lead_id,
            "enquiry_id": enquiry_id if message_kind != MessageKind.AUTOREPLY else None,
            "kind": message_kind.value,
            "channel": channel.value,
            "target": target,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "scheduled_from": now,
            "next_attempt_at": now,
        }
        for message_kind, channel, target in routes
    ]
