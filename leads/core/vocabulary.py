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
    SMS = "sms"


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
    CONSENT_WITHDRAWN = "consent_withdrawn"  # the person asked not to be contacted again


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
    CONSENT_WITHDRAWN = "consent_withdrawn"
    USER_ADDED = "user_added"
    USER_PASSWORD_CHANGED = "user_password_changed"  # noqa: S105 (an action, not a secret)
    USER_DISABLED = "user_disabled"
    TOKEN_CREATED = "token_created"  # noqa: S105
    TOKEN_REVOKED = "token_revoked"  # noqa: S105
    AUDIT_EXPORTED = "audit_exported"
    PURGE = "purge"  # detail: the counts removed, by RemovedKind
    ERASURE = "erasure"  # detail: {"by": "email" | "phone", and the counts}; never the address
    SUBJECT_EXPORTED = "subject_exported"  # detail: {"by": ..., and the counts}
    BACKUP = "backup"  # `leads backup`: detail {"path": ..., "bytes": ...}


class RemovedKind(StrEnum):
    """What retention and erasure remove, counted by kind; ``label`` is how the commands
    print it (``leads: 3``)."""

    LEADS = "leads"
    ENQUIRIES = "enquiries"
    OUTBOX_MESSAGES = "outbox_messages"
    TIMELINE_ENTRIES = "timeline_entries"
    IDEMPOTENCY_KEYS = "idempotency_keys"
    SESSIONS = "sessions"  # ended staff sessions (retention only)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class DailyJob(StrEnum):
    """Chores done once a day across every server and worker (a ``daily_jobs`` row each)."""

    PURGE = "purge"


# The label values of the metrics (leads/web/metrics.py): fixed lists, never visitor input.
class SubmissionOutcome(StrEnum):
    STORED = "stored"  # a new lead, or an enquiry joined to an open one
    SPAM = "spam"  # stored, flagged
    INVALID = "invalid"  # 422: the fields failed their checks
    RATE_LIMITED = "rate_limited"  # 429
    BUSY = "busy"  # 503 intake_busy: the intake queue was full, or shutting down
    REPLAYED = "replayed"  # a known Idempotency-Key answered with its first receipt
    UNAVAILABLE = "unavailable"  # 503: the database failed


class DeliveryOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # failed for now; tried again later
    DEAD = "dead"  # a dead letter


class LoginOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # unknown account, disabled account or wrong password
    THROTTLED = "throttled"  # refused before the password was checked


class Language(StrEnum):
    """The languages the visitor-facing pages and emails are shipped in (leads/locale/):
    ISO 639-1 codes, as ``<html lang>``, ``Accept-Language`` and the catalogs name them."""

    EN = "en"
    ES = "es"
    DE = "de"

    @property
    def autonym(self) -> str:
        """The language's name in itself, as a speaker of it would look for it."""
        return {"en": "English", "es": "Español", "de": "Deutsch"}[self.value]
