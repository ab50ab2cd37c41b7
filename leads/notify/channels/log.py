"""No channel configured: the notification is a line in the log (ids only, no personal
details), so a fresh install works and the operator sees that leads are arriving."""

from __future__ import annotations

import logging

from leads.storage.models import Lead, OutboxMessage

log = logging.getLogger("leads.notify")


class LogChannel:
    name = "log"

    async def announce(self, message: OutboxMessage, lead: Lead) -> None:
        log.warning(
            "notification %s: %s %s on form %s. No inbox is configured, so this log line "
            "is the only notice: set LEADS_INBOX and LEADS_SMTP_URL (see docs/notifications.md)",
            message.id,
            message.kind,
            lead.id,
            lead.form,
        )
