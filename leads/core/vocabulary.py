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
    """Where a lead stands in the follow-up. Any change away from ``new`` is its first
    response, the moment the speed-to-lead clock stops."""

    NEW = "new"  # nobody has started on it: the only status a returning visitor joins
    CONTACTED = "contacted"
    BOOKED = "booked"
    NOT_INTERESTED = "not_interested"
    UNREACHABLE = "unreachable"
    SPAM = "spam"  # in the spam folder (``Lead.spam`` is true); "Not spam" takes it back to new


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class MessageKind(StrEnum):
    LEAD_CREATED = "lead.created"
    ENQUIRY_ADDED = "lead.enquiry_added"
    AUTOREPLY = "autoreply"
    DIGEST = "digest"  # the daily list of overdue leads; belongs to no single lead


class Channel(StrEnum):
    SMTP = "smtp"
    EMAIL_API = "email_api"
    WEBHOOK = "webhook"
    LOG = "log"


class Role(StrEnum):
    ADMIN = "admin"  # also manages accounts and reads the audit log
    STAFF = "staff"


class TokenScope(StrEnum):
    READ = "read"
    WRITE = "write"


class EventKind(StrEnum):
    """What a lead's timeline records besides its enquiries and notifications."""

    STATUS = "status"  # detail: {"from": ..., "to": ...}
    ASSIGNMENT = "assignment"  # detail: {"from": email | None, "to": email | None}
    NOTE = "note"  # the note's text is in LeadEvent.text
    RELEASED = "released"  # marked not spam
    RESENT = "resent"  # detail: {"message_id": ...}
    MERGED = "merged"  # detail: {"other": lead id}; on both leads
    UNMERGED = "unmerged"  # detail: {"other": lead id}; on both leads


class AuditAction(StrEnum):
    """Every entry of the audit log is one of these; its detail never names a person."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    LEAD_VIEWED = "lead_viewed"
    LEAD_CHANGED = "lead_changed"
    NOTE_ADDED = "note_added"
    LEADS_EXPORTED = "leads_exported"
    LEAD_RELEASED = "lead_released"
    MESSAGE_RESENT = "message_resent"
    MESSAGE_RETRIED = "message_retried"
    LEADS_MERGED = "leads_merged"
    LEADS_UNMERGED = "leads_unmerged"
    USER_ADDED = "user_added"
    USER_PASSWORD_CHANGED = "user_password_changed"  # noqa: S105 (an action, not a secret)
    USER_DISABLED = "user_disabled"
    TOKEN_CREATED = "token_created"  # noqa: S105
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    AUDIT_EXPORTED = "audit_exported"
    BACKUP = "backup"  # `leads backup`: detail {"path": ..., "bytes": ...}
