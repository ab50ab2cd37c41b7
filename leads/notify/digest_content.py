"""What the daily digest says: overdue leads by first name, form and how long they have
waited, each with its link to the staff pages.

It is built from :class:`DigestRow`, which holds nothing else, so it cannot show a message,
an address, a phone number or an interest (which can name a condition), whatever
LEADS_NOTIFY_DETAIL says.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime

from leads.notify.content import Email, local_time, message_id_for
from leads.settings import Settings
from leads.storage.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class DigestRow:
    """One overdue lead as the digest shows it: nothing more is ever read into it."""

    first_name: str
    form_title: str
    created_at: datetime
    url: str


@dataclass(frozen=True, slots=True)
class DigestContent:
    """The overdue leads at ``now`` (the longest waiting first, at most a page of them) and
    how many there are in all; read from the database as the digest is delivered."""

    now: datetime
    rows: tuple[DigestRow, ...]
    total: int


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def waiting_words(seconds: float) -> str:
    """How long someone has waited, as staff would say it: ``40 minutes``, ``5 hours``,
    ``3 days``."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return _plural(max(minutes, 1), "minute")
    if minutes < 48 * 60:
        return _plural(minutes // 60, "hour")
    return _plural(minutes // (24 * 60), "day")


def digest_email(message: OutboxMessage, digest: DigestContent, settings: Settings) -> Email:
    hours = f"{settings.follow_up_hours:g}"
    count = digest.total
    if count:
        subject = f"{_plural(count, 'lead')} waiting over {hours} opening hours"
        intro = (
            f"These leads have waited more than {hours} opening hours for a first answer "
            f"(as of {local_time(digest.now, settings.timezone)}):"
        )
    else:
        subject = "No lead is waiting any more"
        intro = "Every lead that was overdue when this digest was due has been answered since."
    lines = [
        (
            row,
            f"{row.first_name} ({row.form_title}), waiting "
            + waiting_words((digest.now - row.created_at).total_seconds()),
        )
        for row in digest.rows
    ]
    more = count - len(digest.rows)
    leads_list = f"{settings.public_url}/staff/leads"
    text_lines = [intro, ""]
    for row, words in lines:
        text_lines += [f"- {words}", f"  {row.url}"]
    if more > 0:
        text_lines += [
            "",
            f"And {more} more: see the list of leads at {leads_list}",
        ]
    e = html.escape
    items = "".join(f'<li><a href="{e(row.url)}">{e(words)}</a></li>' for row, words in lines)
    body = [f"<p>{e(intro)}</p>"]
    if items:
        body.append(f"<ul>{items}</ul>")
    if more > 0:
        body.append(f'<p>And {more} more: see <a href="{e(leads_list)}">the list of leads</a>.</p>')
    return Email(
        sender=settings.mail_from,
        to=settings.inbox,
        subject=subject,
        text="\n".join(text_lines) + "\n",
        html="<!doctype html><html><body>" + "".join(body) + "</body></html>",
        message_id=message_id_for(message, settings),
        headers={"X-Leads-Notification-Id": str(message.id), "Auto-Submitted": "auto-generated"},
    )
