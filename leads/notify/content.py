"""What a notification says: the clinic's email (at the chosen detail level), the visitor's
autoreply, and the webhook payload. Pure functions of the stored lead.

Detail levels (LEADS_NOTIFY_DETAIL), for clinics that must keep health details out of email:
- ``full``: name, contact details, preference, interest and message;
- ``contact``: name and contact details only: no message, no interest (it can name a condition);
- ``minimal``: a link to the lead and nothing about the visitor, not even in the subject.
Webhooks always carry the full lead: they go to systems the clinic runs, signed.
The daily digest's email is in :mod:`leads.notify.digest_content`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import phonenumbers

from leads.core.clinic import ClinicIdentity
from leads.core.forms import Form
from leads.core.routing import inbox_of_target
from leads.core.vocabulary import ATTRIBUTION
from leads.settings import Settings
from leads.storage.models import Enquiry, Lead, OutboxMessage

CONTACT_WORDS = {"email": "email", "phone": "a phone call", "text": "a text message"}


@dataclass(frozen=True)
class Email:
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    message_id: str
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def message_id_for(message: OutboxMessage, settings: Settings) -> str:
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
    try:  # a Message-ID is ASCII: an internationalised domain in its IDNA form
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        domain = "leads.invalid"
    return f"<{message.id}@{domain}>"


def clinic_of(form: Form | None, settings: Settings) -> ClinicIdentity:
    """The clinic a message speaks for: the form's identity, or the settings'."""
    default = settings.clinic_identity()
    return form.identity(default) if form else default


def sender_for(clinic: ClinicIdentity, settings: Settings) -> str:
    """LEADS_MAIL_FROM with the clinic's name as its display name, when one is set. Written
    as a quoted string that ``parseaddr`` reads back exactly; leads.notify.mime (or the email
    API) then encodes it for the header."""
    if not clinic.name:
        return settings.mail_from
    address = parseaddr(settings.mail_from)[1]
    quoted = clinic.name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{address}>'


def lead_url(lead: Lead, settings: Settings) -> str:
    return f"{settings.public_url}/staff/leads/{lead.id}"


def first_name(name: str) -> str:
    return name.split()[0][:40] if name.split() else name[:40]


def pretty_phone(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def local_time(moment: datetime, zone: str) -> str:
    """A stored (UTC) time as staff read it, in LEADS_TIMEZONE: ``2026-11-24 16:19 EST``, or
    ``2026-11-24 21:19 UTC`` in UTC. A zone whose abbreviation is only an offset (``+04``)
    is shown as ``UTC+04:00``."""
    local = moment.astimezone(ZoneInfo(zone))
    abbreviation = local.tzname() or ""
    if not abbreviation.isalpha():
        offset = local.strftime("%z")  # +0400
        abbreviation = f"UTC{offset[:3]}:{offset[3:]}"
    return f"{local:%Y-%m-%d %H:%M} {abbreviation}"


def clinic_inbox(message: OutboxMessage, settings: Settings) -> tuple[str, ...]:
    """Who gets the clinic's email: the form's own inbox written into the row's ``target``
    when it was queued, else LEADS_INBOX."""
    return inbox_of_target(message.target) if message.target else settings.inbox


def reply_inbox(form: Form | None, settings: Settings) -> str | None:
    """Where a visitor's reply to the autoreply goes: the form's own inbox if it names one
    (none if it is empty), else LEADS_INBOX's first address."""
    inbox = form.routing.inbox if form and form.routing.inbox is not None else settings.inbox
    return inbox[0] if inbox else None


def clinic_email(
    message: OutboxMessage,
    lead: Lead,
    enquiry: Enquiry | None,
    form: Form | None,
    settings: Settings,
) -> Email:
    detail = settings.notify_detail
    title = form.title if form else lead.form
    returning = enquiry is not None
    # Who wrote this time: a follow-up may come from another member of the household.
    name = (enquiry.name if enquiry else None) or lead.name
    email = (enquiry.email if enquiry else None) or lead.email
    phone = (enquiry.phone if enquiry else None) or lead.phone
    headline = "Follow-up enquiry" if returning else "New enquiry"
    subject = f"{headline}: {title}"
    if detail != "minimal":
        subject += f" from {first_name(name)}"

    url = lead_url(lead, settings)
    received = local_time(enquiry.created_at if enquiry else lead.created_at, settings.timezone)
    rows: list[tuple[str, str, str | None]] = []  # label, text, link
    if detail != "minimal":
        rows.append(("Name", name, None))
        if email:
            # Quoted: a valid address may hold "?" or "&", which a mailto: link would read
            # as extra headers (bcc=...).
            rows.append(("Email", email, f"mailto:{quote(email, safe='@')}"))
        if phone:
            rows.append(("Phone", pretty_phone(phone), f"tel:{phone}"))
        preferred = (enquiry.preferred_contact if enquiry else None) or lead.preferred_contact
        if preferred:
            rows.append(("Prefers", CONTACT_WORDS.get(preferred, preferred), None))
    words = None
    if detail == "full":
        interest = enquiry.interest if enquiry else lead.interest
        if interest:
            rows.append(("Interested in", interest, None))
        words = enquiry.message if enquiry else lead.message
    rows.append(("Received", received, None))

    intro = (
        f'Someone who wrote in before has sent another enquiry through "{title}".'
        if returning
        else f'A new enquiry came in through "{title}".'
    )
    text_lines = [intro, ""]
    text_lines += [f"{label}: {value}" for label, value, _ in rows]
    if words:
        text_lines += ["", "Message:", words]
    # Shares an email or phone with an open lead but not the other detail: staff decide.
    earlier = None
    if lead.duplicate_of is not None and not returning:
        earlier = f"{settings.public_url}/staff/leads/{lead.duplicate_of}"
        text_lines += ["", f"This may be the same person as an earlier lead: {earlier}"]
    text_lines += ["", f"Open this lead: {url}"]
    if detail != "minimal" and email:
        text_lines += ["", f"Reply to this email to write to {first_name(name)} directly."]

    e = html.escape
    cells = "".join(
        f"<tr><th align=left>{e(label)}</th><td>"
        + (f'<a href="{e(link)}">{e(value)}</a>' if link else e(value))
        + "</td></tr>"
        for label, value, link in rows
    )
    body = [f"<p>{e(intro)}</p>", f"<table cellpadding=4>{cells}</table>"]
    if words:
        body.append(f"<p><strong>Message:</strong></p><p>{e(words).replace(chr(10), '<br>')}</p>")
    if earlier is not None:
        body.append(
            f'<p>This may be the same person as <a href="{e(earlier)}">an earlier lead</a>.</p>'
        )
    body.append(f'<p><a href="{e(url)}">Open this lead</a></p>')
    if detail != "minimal" and email:
        body.append(f"<p>{e(f'Reply to this email to write to {first_name(name)} directly.')}</p>")

    return Email(
        sender=sender_for(clinic_of(form, settings), settings),
        to=clinic_inbox(message, settings),
        subject=subject,
        text="\n".join(text_lines) + "\n",
        html="<!doctype html><html><body>" + "".join(body) + "</body></html>",
        message_id=message_id_for(message, settings),
        reply_to=email if detail != "minimal" else None,
        headers={"X-Leads-Notification-Id": str(message.id)},
    )


def default_autoreply(clinic: ClinicIdentity) -> str:
    """What the autoreply says unless the form has its own words."""
    call = clinic.called + (f" on {clinic.phone.display}" if clinic.phone else "")
    return (
        "Thank you for getting in touch. We have your request and will get back to you soon, "
        "usually within one working day.\n\n"
        f"If your question is urgent, please call {call}. In an emergency, call your local "
        "emergency number."
    )


def autoreply_email(
    message: OutboxMessage, lead: Lead, form: Form | None, settings: Settings
) -> Email:
    assert lead.email is not None
    clinic = clinic_of(form, settings)
    title = form.title if form else "your enquiry"
    words = (form.autoreply if form and form.autoreply else None) or default_autoreply(clinic)
    greeting = f"Hello {first_name(lead.name)},"
    signature = signature_lines(clinic)
    text = f"{greeting}\n\n{words}\n" + (f"\n{chr(10).join(signature)}\n" if signature else "")
    e = html.escape
    paragraphs = "".join(f"<p>{e(p)}</p>" for p in words.split("\n\n"))
    if signature:
        paragraphs += f"<p>{'<br>'.join(signature_html(clinic))}</p>"
    return Email(
        sender=sender_for(clinic, settings),
        to=(lead.email,),
        subject=f"We have your request: {title}",
        text=text,
        html=f"<!doctype html><html><body><p>{html.escape(greeting)}</p>{paragraphs}</body></html>",
        message_id=message_id_for(message, settings),
        reply_to=reply_inbox(form, settings),
        headers={"X-Leads-Notification-Id": str(message.id), "Auto-Submitted": "auto-replied"},
    )


def signature_lines(clinic: ClinicIdentity) -> list[str]:
    """The autoreply's signature: the clinic's name, phone and site, those that are set."""
    lines = [clinic.name] if clinic.name else []
    if clinic.phone:
        lines.append(f"Phone: {clinic.phone.display}")
    if clinic.url:
        lines.append(clinic.url)
    return lines


def signature_html(clinic: ClinicIdentity) -> list[str]:
    e = html.escape
    lines = [e(clinic.name)] if clinic.name else []
    if clinic.phone:
        lines.append(f'Phone: <a href="tel:{e(clinic.phone.e164)}">{e(clinic.phone.display)}</a>')
    if clinic.url:
        lines.append(f'<a href="{e(clinic.url)}">{e(clinic.url)}</a>')
    return lines


def iso_utc(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def webhook_payload(
    message: OutboxMessage,
    lead: Lead,
    enquiry: Enquiry | None,
    form: Form | None,
    settings: Settings,
) -> dict[str, Any]:
    """``{"type", "timestamp", "data"}`` as the Standard Webhooks convention has it."""
    data: dict[str, Any] = {
        "id": str(lead.id),
        # The receipt of the submission this message announces: what its sender was told.
        "enquiry_id": str(enquiry.id if enquiry is not None else lead.receipt_id),
        "url": lead_url(lead, settings),
        "form": lead.form,
        "form_title": form.title if form else lead.form,
        "status": lead.status,
        "created_at": iso_utc(lead.created_at),
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "preferred_contact": lead.preferred_contact,
        "interest": lead.interest,
        "message": lead.message,
        "enquiry_count": lead.enquiry_count,
        "duplicate_of": str(lead.duplicate_of) if lead.duplicate_of else None,
        "attribution": {key: getattr(lead, key) for key in ATTRIBUTION},
    }
    when = lead.created_at
    if enquiry is not None:
        data["enquiry"] = {
            "id": str(enquiry.id),
            "name": enquiry.name,
            "email": enquiry.email,
            "phone": enquiry.phone,
            "created_at": iso_utc(enquiry.created_at),
            "form": enquiry.form,
            "interest": enquiry.interest,
            "message": enquiry.message,
            "preferred_contact": enquiry.preferred_contact,
        }
        when = enquiry.created_at
    return {"type": message.kind, "timestamp": iso_utc(when), "data": data}
