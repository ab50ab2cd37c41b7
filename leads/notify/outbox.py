"""Which outbox messages a stored submission produces. Called inside the intake transaction,
so a lead and its notifications are committed together or not at all."""

from __future__ import annotations

import uuid
from datetime import datetime

from leads.core.vocabulary import MessageKind
from leads.notify.channels import builtin_channels
from leads.settings import Settings
from leads.storage.models import OutboxMessage


def messages_for(
    settings: Settings,
    *,
    lead_id: uuid.UUID,
    enquiry_id: uuid.UUID | None,
    visitor_email: str | None,
    now: datetime,
) -> list[OutboxMessage]:
    """One message per configured channel; plus the visitor's autoreply for a new lead when
    enabled. Spam gets none (one row per flagged submission, no more): `leads spam release`
    writes a released lead's messages then, without the autoreply."""
    kind = MessageKind.LEAD_CREATED if enquiry_id is None else MessageKind.ENQUIRY_ADDED
    channels = builtin_channels()
    planned = [
        OutboxMessage(
            lead_id=lead_id,
            enquiry_id=enquiry_id,
            kind=kind,
            channel=route.channel,
            target=route.target,
            created_at=now,
            scheduled_from=now,
            next_attempt_at=now,
        )
        for route in channels.routes_for(settings)
    ]
    autoreply = channels.autoreply_route(settings)
    if settings.autoreply and autoreply and visitor_email and enquiry_id is None:
        planned.append(
            OutboxMessage(
                lead_id=lead_id,
                kind=MessageKind.AUTOREPLY,
                channel=autoreply.channel,
                created_at=now,
                scheduled_from=now,
                next_attempt_at=now,
            )
        )
    return planned
