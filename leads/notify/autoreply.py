"""The visitor's autoreply, in the language they used: the form's words in that language
(its translation's ``autoreply`` or its own), or ours from the catalogs. Written when it
is sent, from the stored lead: ``lead.language`` is the language the form was shown in
(leads stored before it kept one: the form's language, then LEADS_LANGUAGE)."""

from __future__ import annotations

import html

from leads.core.clinic import ClinicIdentity
from leads.core.forms import Form
from leads.core.vocabulary import Language
from leads.core.wording import worded
from leads.i18n.catalogs import LanguageWords, words_for
from leads.notify.content import (
    Email,
    clinic_of,
    first_name,
    message_id_for,
    reply_inbox,
    sender_for,
)
from leads.settings import Settings
from leads.storage.models import Lead, OutboxMessage
from leads.translatable import N_
from leads.translatable import worded as filled


def visitor_language(lead: Lead, form: Form | None, settings: Settings) -> Language:
    if lead.language in {language.value for language in Language}:
        return Language(lead.language)
    if form is not None and form.language is not None:
        return form.language
    return settings.language


def clinic_called(clinic: ClinicIdentity, words: LanguageWords) -> str:
    """How a sentence names the clinic: its name, or "the clinic" in the visitor's words."""
    return clinic.name or words.gettext("the clinic")


def default_autoreply(clinic: ClinicIdentity, words: LanguageWords) -> str:
    """What the autoreply says unless the form has its own words."""
    params = {"clinic": clinic_called(clinic, words)}
    if clinic.phone:
        urgent = words.gettext(
            "If your question is urgent, please call %(clinic)s on %(phone)s. In an "
            "emergency, call your local emergency number."
        ) % {**params, "phone": clinic.phone.display}
    else:
        urgent = (
            words.gettext(
                "If your question is urgent, please call %(clinic)s. In an emergency, call your "
                "local emergency number."
            )
            % params
        )
    thanks = words.gettext(
        "Thank you for getting in touch. We have your request and will get back to you soon, "
        "usually within one working day."
    )
    return f"{thanks}\n\n{urgent}"


def autoreply_email(
    message: OutboxMessage, lead: Lead, form: Form | None, settings: Settings
) -> Email:
    assert lead.email is not None
    clinic = clinic_of(form, settings)
    language = visitor_language(lead, form, settings)
    words = words_for(language)
    shown = worded(form, language, words.gettext) if form else None
    title = shown.title if shown else words.gettext("your enquiry")
    words_given = shown.autoreply if shown and shown.autoreply else None
    text_body = words_given or default_autoreply(clinic, words)
    greeting = filled(words, N_("Hello %(name)s,"), {"name": first_name(lead.name)})
    signature = signature_lines(clinic, words)
    text = f"{greeting}\n\n{text_body}\n" + (f"\n{chr(10).join(signature)}\n" if signature else "")
    e = html.escape
    paragraphs = "".join(f"<p>{e(p)}</p>" for p in text_body.split("\n\n"))
    if signature:
        paragraphs += f"<p>{'<br>'.join(signature_html(clinic, words))}</p>"
    # English as it always was; another language says which, for screen readers.
    lang = "" if language is Language.EN else f' lang="{language.value}"'
    page = f"<!doctype html><html{lang}><body>"
    return Email(
        sender=sender_for(clinic, settings),
        to=(lead.email,),
        subject=filled(words, N_("We have your request: %(form)s"), {"form": title}),
        text=text,
        html=f"{page}<p>{e(greeting)}</p>{paragraphs}</body></html>",
        message_id=message_id_for(message, settings),
        reply_to=reply_inbox(form, settings),
        headers={"X-Leads-Notification-Id": str(message.id), "Auto-Submitted": "auto-replied"},
    )


def signature_lines(clinic: ClinicIdentity, words: LanguageWords) -> list[str]:
    """The autoreply's signature: the clinic's name, phone and site, those that are set."""
    lines = [clinic.name] if clinic.name else []
    if clinic.phone:
        lines.append(filled(words, N_("Phone: %(phone)s"), {"phone": clinic.phone.display}))
    if clinic.url:
        lines.append(clinic.url)
    return lines


def signature_html(clinic: ClinicIdentity, words: LanguageWords) -> list[str]:
    e = html.escape
    lines = [e(clinic.name)] if clinic.name else []
    if clinic.phone:
        link = f'<a href="tel:{e(clinic.phone.e164)}">{e(clinic.phone.display)}</a>'
        lines.append(e(words.gettext("Phone: %(phone)s")) % {"phone": link})
    if clinic.url:
        lines.append(f'<a href="{e(clinic.url)}">{e(clinic.url)}</a>')
    return lines
