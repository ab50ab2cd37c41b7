"""What a notification says: the clinic's email (at the chosen detail level, in the staff's
language, LEADS_LANGUAGE) and the webhook payload. Pure functions of the stored lead. The
visitor's autoreply is in :mod:`leads.notify.autoreply`.

Detail levels (LEADS_NOTIFY_DETAIL), for clinics that must keep health details out of email:
- ``full``: name, contact details, preference, interest and message;
- ``contact``: name and contact details only: no message, no interest (it can name a condition);
- ``minimal``: a link to the lead and nothing about the visitor, not even in the subject.
Webhooks always carry the full lead: they go to systems the clinic runs, signed.
The daily digest's email is in :mod:`leads.notify.digest_content`.
"""

from __future__ import annotations

import functools
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
from leads.core.vocabulary import ATTRIBUTION, Language
from leads.i18n.catalogs import LanguageWords, words_for
from leads.i18n.choice import shown_in
from leads.settings import Settings
from leads.storage.models import Enquiry, Lead, OutboxMessage
from leads.translatable import N_

CONTACT_WORDS = {"email": N_("email"), "phone": N_("a phone call"), "text": N_("a text message")}
# The clinic email's subject: (a returning visitor's, naming the visitor).
SUBJECTS = {
    (False, True): N_("New enquiry: %(form)s from %(name)s"),
    (False, False): N_("New enquiry: %(form)s"),
    (True, True): N_("Follow-up enquiry: %(form)s from %(name)s"),
    (True, False): N_("Follow-up enquiry: %(form)s"),
}


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
    return f"<{message.id}@{message_id_domain(settings.mail_from)}>"


@functools.lru_cache(maxsize=16)
def message_id_domain(mail_from: str) -> str:
    """The Message-IDs' domain: LEADS_MAIL_FROM's (kept: parsing it was a quarter of the
    cost of writing a clinic email)."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2]
    try:  # a Message-ID is ASCII: an internationalised domain in its IDNA form
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        domain = "leads.invalid"
    return domain


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


def received_at(moment: datetime, zone: str, words: LanguageWords) -> str:
    """When a lead came in, for staff: :func:`local_time` in English, else the date and
    time as the staff's language writes them (CLDR's medium date, short time, through
    Babel), with the same zone: ``01.12.2026, 16:19 CET``."""
    if words.language is Language.EN:
        return local_time(moment, zone)
    from babel.dates import format_date, format_time, get_datetime_format

    locale = words.language.value
    local = moment.astimezone(ZoneInfo(zone))
    when = str(get_datetime_format("medium", locale=locale)).format(
        format_time(local, "short", locale=locale), format_date(local, "medium", locale=locale)
    )
    return f"{when} {local_time(moment, zone).split()[-1]}"


def clinic_email(
    message: OutboxMessage,
    lead: Lead,
    enquiry: Enquiry | None,
    form: Form | None,
    settings: Settings,
) -> Email:
    """The clinic's notification, in the staff's language (LEADS_LANGUAGE)."""
    words = words_for(settings.language)
    _ = words.gettext
    detail = settings.notify_detail
    title = shown_in(form, settings.language).title if form else lead.form
    returning = enquiry is not None
    # Who wrote this time: a follow-up may come from another member of the household.
    name = (enquiry.name if enquiry else None) or lead.name
    email = (enquiry.email if enquiry else None) or lead.email
    phone = (enquiry.phone if enquiry else None) or lead.phone
    headline = SUBJECTS[(returning, detail != "minimal")]
    subject = _(headline) % {"form": title, "name": first_name(name)}

    url = lead_url(lead, settings)
    moment = enquiry.created_at if enquiry else lead.created_at
    received = received_at(moment, settings.timezone, words)
    rows: list[tuple[str, str, str | None]] = []  # label, text, link
    if detail != "minimal":
        rows.append((_("Name"), name, None))
        if email:
            # Quoted: a valid address may hold "?" or "&", which a mailto: link would read
            # as extra headers (bcc=...).
            rows.append((_("Email"), email, f"mailto:{quote(email, safe='@')}"))
        if phone:
            rows.append((_("Phone"), pretty_phone(phone), f"tel:{phone}"))
        preferred = (enquiry.preferred_contact if enquiry else None) or lead.preferred_contact
        if preferred:
            rows.append((_("Prefers"), _(CONTACT_WORDS.get(preferred, preferred)), None))
        wrote_in = (enquiry.language if enquiry else None) or lead.language
        if wrote_in and wrote_in != settings.language:
            # The name of the visitor's language in the staff's, from CLDR.
            from babel import Locale

            language = Locale.parse(settings.language.value).languages.get(wrote_in, wrote_in)
            rows.append((_("Wrote in"), language, None))
    said = None
    if detail == "full":
        interest = enquiry.interest if enquiry else lead.interest
        if interest:
            rows.append((_("Interested in"), interest, None))
        said = enquiry.message if enquiry else lead.message
    rows.append((_("Received"), received, None))

    if returning:
        intro = _('Someone who wrote in before has sent another enquiry through "%(form)s".')
    else:
        intro = _('A new enquiry came in through "%(form)s".')
    intro = intro % {"form": title}
    text_lines = [intro, ""]
    text_lines += [f"{label}: {value}" for label, value, _ in rows]
    if said:
        text_lines += ["", _("Message:"), said]
    # Shares an email or phone with an open lead but not the other detail: staff decide.
    earlier = None
    if lead.duplicate_of is not None and not returning:
        earlier = f"{settings.public_url}/staff/leads/{lead.duplicate_of}"
        same = _("This may be the same person as an earlier lead: %(link)s")
        text_lines += ["", same % {"link": earlier}]
    text_lines += ["", _("Open this lead: %(link)s") % {"link": url}]
    reply = _("Reply to this email to write to %(name)s directly.") % {"name": first_name(name)}
    if detail != "minimal" and email:
        text_lines += ["", reply]

    e = html.escape
    cells = "".join(
        f"<tr><th align=left>{e(label)}</th><td>"
        + (f'<a href="{e(link)}">{e(value)}</a>' if link else e(value))
        + "</td></tr>"
        for label, value, link in rows
    )
    body = [f"<p>{e(intro)}</p>", f"<table cellpadding=4>{cells}</table>"]
    if said:
        heading = e(_("Message:"))
        body.append(f"<p><strong>{heading}</strong></p><p>{e(said).replace(chr(10), '<br>')}</p>")
    if earlier is not None:
        earlier_words = e(_("an earlier lead"))
        same_html = e(_("This may be the same person as %(link)s.")) % {
            "link": f'<a href="{e(earlier)}">{earlier_words}</a>'
        }
        body.append(f"<p>{same_html}</p>")
    open_words = e(_("Open this lead"))
    body.append(f'<p><a href="{e(url)}">{open_words}</a></p>')
    if detail != "minimal" and email:
        body.append(f"<p>{e(reply)}</p>")
    lang = "" if words.language is Language.EN else f' lang="{words.language.value}"'

    return Email(
        sender=sender_for(clinic_of(form, settings), settings),
        to=clinic_inbox(message, settings),
        subject=subject,
        text="\n".join(text_lines) + "\n",
        html=f"<!doctype html><html{lang}><body>" + "".join(body) + "</body></html>",
        message_id=message_id_for(message, settings),
        reply_to=email if detail != "minimal" else None,
        headers={"X-Leads-Notification-Id": str(message.id)},
    )


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
