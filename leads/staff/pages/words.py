"""How the dashboard words times and waits for people: local times in LEADS_TIMEZONE, and
waits in plain words ("2 h 5 min", "3 days 4 h")."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from leads.core.vocabulary import LeadStatus

STATUS_LABELS = {
    LeadStatus.NEW: "New",
    LeadStatus.CONTACTED: "Contacted",
    LeadStatus.BOOKED: "Booked",
    LeadStatus.NOT_INTERESTED: "Not interested",
    LeadStatus.UNREACHABLE: "Could not reach",
    LeadStatus.SPAM: "Spam",
}
CONTACT_LABELS = {"email": "Email", "phone": "Phone call", "text": "Text message"}


def status_label(status: str) -> str:
    try:
        return STATUS_LABELS[LeadStatus(status)]
    except ValueError:
        return status


def waited(span: timedelta) -> str:
    """A wait in plain words, to the minute under a day and to the hour above."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        unit = "day" if days == 1 else "days"
        return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


# English names, as strftime's %a and %b write them in the C locale (Python's default):
# looked up rather than formatted, as a list page writes fifty times a page.
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_time(moment: datetime | str | None, zone: str, now: datetime | None = None) -> str:
    """``moment`` in the clinic's zone: "today 14:05" today, "Tue 1 Dec 2026 14:05" otherwise."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    clinic = ZoneInfo(zone)  # (zoneinfo keeps one per zone)
    local = moment.astimezone(clinic)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if now is not None and now.astimezone(clinic).date() == local.date():
        return f"today {clock}"
    return f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year} {clock}"
