"""No channel configured: the notification is a line in the log (ids only, no personal
details), so a fresh install works and the operator sees that leads are arriving."""

from __future__ import annotations

import logging
import uuid

from leads.core.vocabulary import Channel
from leads.notify.channels.base import ChannelEntry, ChannelRegistry, Clock, Notice
from leads.outbound import HTTPClient
from leads.settings import Settings

log = logging.getLogger("leads.notify")


class LogChannel:
    async def deliver(self, notice: Notice) -> None:
        log.warning(
            "notification %s: %s %s on form %s. No inbox is configured, so this log line "
            "is the only notice: set LEADS_INBOX and LEADS_SMTP_URL (see docs/notifications.md)",
            notice.message.id,
            notice.message.kind,
            notice.lead.id,
            notice.lead.form,
        )

    async def send_test(self, target: str | None, test_id: uuid.UUID) -> None:
        return None  # nothing to reach: `leads notify-test` says no inbox is configured


def _build(settings: Settings, http: HTTPClient, clock: Clock) -> LogChannel:
    return LogChannel()


def register(registry: ChannelRegistry) -> None:
    registry.register(
        Channel.LOG,
        ChannelEntry(configured=lambda settings: True, build=_build, fallback=True),
    )
