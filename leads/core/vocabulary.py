"""Named values and windows that the intake, the notifications and the staff side share.

The enums are ``StrEnum``s: the database stores their values as plain strings, exactly as
before they were named, and a value compares equal to its string.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

# Where the visitor came from and what they were shown; kept on leads and enquiries alike.
ATTRIBUTION = (
    "page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)

# How long an Idempotency-Key is answered with its first receipt.
REPLAY_WINDOW = timedelta(hours=24)
# How long after their latest enquiry a returning visitor's submission joins their lead.
RETURNING_WINDOW = timedelta(hours=24)


class LeadStatus(StrEnum):
    NEW = "new"  # nobody has started on it: the only status a returning visitor joins


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class MessageKind(StrEnum):
    LEAD_CREATED = "lead.created"
    ENQUIRY_ADDED = "lead.enquiry_added"
    AUTOREPLY = "autoreply"


class Channel(StrEnum):
    SMTP = "smtp"
    EMAIL_API = "email_api"
    WEBHOOK = "webhook"
    LOG = "log"
