"""How the spam, deliveries, response-times and audit pages word what is stored: spam
reasons, notification kinds and channels, audit actions and who did them, and the opening
hours, for the front desk rather than for engineers. Times and waits are worded by
``words.py``, as on every dashboard page."""

from __future__ import annotations

from leads.abuse.defaults import built_in_rules
from leads.core.vocabulary import AuditAction, Channel, MessageKind

SPAM_REASONS = {
    "honeypot": "A hidden field that only robots fill in was filled in",
    "too_fast": "Sent faster than a person can fill in the form",
    "token_expired": "The form was opened more than a day before it was sent",
    "token_forged": "The form did not come from our page",
    "token_wrong_form": "The form was copied from another of our forms",
    "token_missing": "The form did not come from our page",
    "captcha_missing": "The robot check was not answered",
    "captcha_failed": "The robot check was answered wrongly",
    "captcha_low_score": "The robot check thought it was likely a robot",
    "captcha_unavailable": "The robot check could not be reached",
    "too_many_links": "The message has many web links",
    "blocked_term": "The name or message has a blocked word",
    "name_is_url": "The name is a web address",
    "marked by staff": "Marked as spam by staff",
}
KINDS = {
    MessageKind.LEAD_CREATED: "New lead email",
    MessageKind.ENQUIRY_ADDED: "Another enquiry email",
    MessageKind.AUTOREPLY: "Reply to the visitor",
    MessageKind.DIGEST: "Daily list of overdue leads",
}
CHANNELS = {
    Channel.SMTP: "by email",
    Channel.EMAIL_API: "through the email service",
    Channel.WEBHOOK: "by webhook",
    Channel.LOG: "to the log",
    Channel.SMS: "by text",
}
ACTIONS = {
    AuditAction.LOGIN: "Signed in",
    AuditAction.LOGIN_FAILED: "Sign-in failed",
    AuditAction.LOGOUT: "Signed out",
    AuditAction.LEAD_VIEWED: "Viewed a lead",
    AuditAction.LEAD_CHANGED: "Changed a lead",
    AuditAction.NOTE_ADDED: "Added a note",
    AuditAction.LEADS_EXPORTED: "Downloaded leads",
    AuditAction.LEAD_RELEASED: "Marked a lead not spam",
    AuditAction.MESSAGE_RESENT: "Sent a notification again",
    AuditAction.MESSAGE_RETRIED: "Retried a failed notification",
    AuditAction.LEADS_MERGED: "Merged leads",
    AuditAction.LEADS_UNMERGED: "Undid a merge",
    AuditAction.USER_ADDED: "Added a staff account",
    AuditAction.USER_PASSWORD_CHANGED: "Changed a password",
    AuditAction.USER_DISABLED: "Disabled a staff account",
    AuditAction.TOKEN_CREATED: "Created an API token",
    AuditAction.TOKEN_REVOKED: "Revoked an API token",
    AuditAction.AUDIT_EXPORTED: "Exported the audit log",
    AuditAction.CONSENT_WITHDRAWN: "Recorded a withdrawal of consent",
    AuditAction.PURGE: "Removed what was past its retention",
    AuditAction.ERASURE: "Erased a person's data",
    AuditAction.SUBJECT_EXPORTED: "Exported everything held about a person",
    AuditAction.BACKUP: "Backed up the database",
}


def _explanations() -> dict[str, str]:
    return {r.value: r.explanation.replace("`", "") for r in built_in_rules().reasons()}


def spam_reasons(stored: str | None) -> list[str]:
    """A lead's ``spam_reason`` (comma-separated codes) as sentences; a code no wording
    is written for (another rule's) is given its rule's own explanation, or as it is."""
    if not stored:
        return ["No reason was recorded"]
    explained = _explanations()
    return [
        SPAM_REASONS.get(code) or explained.get(code) or code
        for code in (part.strip() for part in stored.split(","))
        if code
    ]


def action_label(action: str) -> str:
    try:
        return ACTIONS.get(AuditAction(action), action)
    except ValueError:
        return action


def action_choices() -> list[tuple[str, str]]:
    return [(action.value, action_label(action.value)) for action in AuditAction]


def who(label: str) -> str:
    """An actor label as a person reads it: ``user:ann@x`` is ann@x; tokens say so."""
    kind, _, name = label.partition(":")
    if kind == "user" and name:
        return name
    if kind == "token" and name:
        return f"API token {name}"
    return {
        "cli": "Command line",
        "system": "Leads itself",
        "visitor": "The visitor",
        "anonymous": "Someone not signed in",
    }.get(label, label)


def kind_label(kind: str) -> str:
    try:
        return KINDS.get(MessageKind(kind), kind)
    except ValueError:
        return kind


def channel_label(channel: str) -> str:
    try:
        return CHANNELS.get(Channel(channel), channel)
    except ValueError:
        return channel


def hours_plainly(opening_hours: str) -> str:
    """LEADS_OPENING_HOURS for a reader: "Mon-Fri 08:00-18:00; Sat 09:00-12:00" as
    "Monday to Friday 08:00 to 18:00; Saturday 09:00 to 12:00"."""
    names = dict(zip(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), DAY_NAMES, strict=True))
    parts = []
    for clause in filter(None, (c.strip() for c in opening_hours.split(";"))):
        days, _, times = clause.partition(" ")
        if days.lower() == "mon-sun" and times.replace(" ", "") == "00:00-24:00":
            parts.append("every day, all day")
            continue
        day_words = ", ".join(
            " to ".join(names.get(d.capitalize(), d) for d in item.split("-"))
            for item in days.split(",")
        )
        time_words = ", ".join(t.replace("-", " to ") for t in times.replace(" ", "").split(","))
        parts.append(f"{day_words} {time_words}")
    return "; ".join(parts)


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
