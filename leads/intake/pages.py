"""The hosted form: ``GET/POST /f/{slug}``, its built-in thank-you page, and /favicon.ico.

Works without JavaScript and loads nothing from other sites. On errors the page comes back
(422) with everything the visitor typed and each error beside its field; if the database is
briefly unavailable the page also comes back (503) with their input, so nothing is lost.
Every page is in the visitor's language (leads.i18n.choice), the form's words as the
clinic gave them in it (leads.core.wording).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from leads.abuse.captcha import PROVIDERS
from leads.core.forms import Form
from leads.core.vocabulary import ATTRIBUTION
from leads.errors import (
    FieldError,
    HTTPProblem,
    IntakeBusy,
    InvalidSubmission,
    StorageUnavailable,
    TooManySubmissions,
)
from leads.i18n.catalogs import LanguageWords
from leads.i18n.choice import LanguageChoice
from leads.intake.attribution import tracking_value
from leads.intake.pipeline import Arrival, count_refusal, take_submission
from leads.services import services_of, site_of
from leads.settings import Settings
from leads.translatable import N_
from leads.web.bodies import read_form_fields

log = logging.getLogger("leads.intake")

# The page links this icon; browsers that ask for /favicon.ico anyway get the same one.
FAVICON = Path(__file__).parent.parent / "static" / "favicon.svg"

CONTACT_CHOICES = (
    ("", N_("No preference")),
    ("email", N_("Email")),
    ("phone", N_("Phone call")),
    ("text", N_("Text message")),
)
# Where each field's error in the summary links to.
ANCHORS = {
    "name": "name",
    "email": "email",
    "phone": "phone",
    "message": "message",
    "interest": "interest",
    "consent": "consent",
    "preferred_contact": "preferred_contact-any",
}
# How the error summary names each field: a message such as "Please add this" needs it.
LABELS = {
    "name": N_("Your name"),
    "email": N_("Email address"),
    "phone": N_("Phone number"),
    "preferred_contact": N_("How to contact you"),
    "interest": N_("What you would like help with"),
    "message": N_("Your message"),
    "consent": N_("Permission to contact you"),
}
# The same, after the first of two fields with one message ("Email address or phone number").
LABELS_WITHIN = {
    "name": N_("your name"),
    "email": N_("email address"),
    "phone": N_("phone number"),
    "preferred_contact": N_("how to contact you"),
    "interest": N_("what you would like help with"),
    "message": N_("your message"),
    "consent": N_("permission to contact you"),
}


@dataclass(frozen=True, slots=True)
class SummaryItem:
    anchor: str | None
    label: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ShownError:
    """A field's error as the page shows it beside the field: in the visitor's words."""

    message: str


def error_summary(errors: dict[str, FieldError], words: LanguageWords) -> list[SummaryItem]:
    """One line per distinct message, in form order, linking to the first field it concerns.
    "Give an email or a phone" is marked on both fields but asked once."""
    fields_by_message: dict[str, list[str]] = {}
    for field, error in errors.items():
        fields_by_message.setdefault(error.worded(words), []).append(field)
    items = []
    for message, fields in fields_by_message.items():
        named = [f for f in fields if f in LABELS]
        label = words.gettext(LABELS[named[0]]) if named else None
        for other in named[1:]:
            label = words.gettext("%(first)s or %(second)s") % {
                "first": label,
                "second": words.gettext(LABELS_WITHIN[other]),
            }
        items.append(SummaryItem(ANCHORS.get(fields[0]), label, message))
    return items


def framed(request: Request) -> bool:
    """Whether the browser is loading the page into a frame (``Sec-Fetch-Dest``). Only then
    does the page carry /static/frame.js, which tells the parent page how tall it is; shown
    on its own, the page has no script at all."""
    return request.headers.get("sec-fetch-dest") in ("iframe", "frame")


def content_security_policy(form: Form, request: Request) -> str:
    form_targets = ["'self'"]
    if form.thank_you_url and form.thank_you_url.startswith("http"):
        parts = urlsplit(form.thank_you_url)
        form_targets.append(f"{parts.scheme}://{parts.netloc}")
    settings = site_of(request).settings
    ancestors = ["'self'", *(o for o in settings.allowed_origins if o != "null")]
    sources: dict[str, list[str]] = {"style-src": ["'self'"], "img-src": ["'self'", "data:"]}
    if framed(request):
        sources["script-src"] = ["'self'"]
    # The captcha is the only third-party asset ever allowed, and only when configured.
    if settings.captcha_provider is not None:
        sources.setdefault("script-src", ["'self'"])
        for directive, hosts in PROVIDERS[settings.captcha_provider].csp.items():
            sources.setdefault(directive, ["'self'"] if directive != "frame-src" else [])
            sources[directive] += hosts
    return "; ".join(
        (
            "default-src 'none'",
            *(f"{directive} {' '.join(hosts)}" for directive, hosts in sources.items()),
            f"form-action {' '.join(form_targets)}",
            f"frame-ancestors {' '.join(ancestors)}",
            "base-uri 'none'",
        )
    )


def captcha_widget(settings: Settings) -> dict[str, str] | None:
    if settings.captcha_provider is None or settings.captcha_site_key is None:
        return None
    info = PROVIDERS[settings.captcha_provider]
    return {
        "provider": settings.captcha_provider,
        "site_key": settings.captcha_site_key,
        "script": info.script_url(settings.captcha_site_key),
    }


def render_form(
    request: Request,
    form: Form,
    values: dict[str, Any],
    *,
    errors: dict[str, FieldError] | None = None,
    notice: HTTPProblem | None = None,
    status_code: int = 200,
) -> Response:
    """The form page; ``form`` as the catalog has it (it is shown in the page's language)."""
    site = site_of(request)
    settings = site.settings
    choice = LanguageChoice.of(request, settings)
    words = choice.words(form)
    form = choice.shown(form)
    text_values = {k: v for k, v in values.items() if isinstance(v, str)}
    headers = {
        "Content-Security-Policy": content_security_policy(form, request),
        "Cache-Control": "no-store",
        **(notice.headers if notice else {}),
        "Vary": choice.vary("Sec-Fetch-Dest"),
    }
    # Shown again after an error, the form keeps the token it was first served with: the
    # time trap measures from the first view, and fixing a typo is not "too fast".
    token = text_values.get("form_token") or services_of(request).defences.form_token(form.slug)
    return site.templates.TemplateResponse(
        request,
        "form.html",
        {
            "form": form,
            "clinic": form.identity(settings.clinic_identity()),
            "values": _Blank(text_values),
            "errors": _Blank({f: ShownError(e.worded(words)) for f, e in (errors or {}).items()}),
            "summary": error_summary(errors or {}, words),
            "words": words,
            "notice": notice,
            "form_token": token,
            "captcha": captcha_widget(settings),
            "hidden": ATTRIBUTION,
            "contact_choices": [(value, words.gettext(label)) for value, label in CONTACT_CHOICES],
            "framed": framed(request),
            "action": request.url_for("submit_form", slug=form.slug).path,
        },
        status_code=status_code,
        headers=headers,
    )


class _Blank(dict[str, Any]):
    """A field with no value (or no error) reads as an empty string in the template."""

    def __missing__(self, key: str) -> str:
        return ""


async def show_form(request: Request) -> Response:
    form = site_of(request).forms.get(request.path_params["slug"])
    # A page that frames the form names itself in the frame's address (docs/forms.md).
    found = {
        "page_url": request.query_params.get("page_url") or str(request.url),
        "referrer": request.headers.get("referer"),
        **{f: request.query_params.get(f) for f in ATTRIBUTION if f.startswith("utm_")},
    }
    values = {f: v for f, raw in found.items() if (v := tracking_value(raw)) is not None}
    return render_form(request, form, values)


async def submit_form(request: Request) -> Response:
    services = services_of(request)
    form = services.forms.get(request.path_params["slug"])
    defences = services.defences
    ip = defences.client_ip(request)
    try:
        await defences.before_reading(request, ip)
    except TooManySubmissions as exc:
        count_refusal(services, exc)
        # Read what they typed anyway (it is small and bounded): a person must get it back.
        fields = await read_form_fields(request, services.settings.max_body_bytes)
        return render_form(request, form, fields, notice=exc, status_code=exc.status)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    values = {**fields, "form": form.slug}
    for field in ATTRIBUTION:
        if field in values and (value := tracking_value(values[field])) != values[field]:
            if value is None:
                del values[field]
            else:
                values[field] = value
    try:
        await take_submission(services, values, Arrival.of(request, ip))
    except InvalidSubmission as exc:
        return render_form(request, form, values, errors=exc.by_field(), status_code=422)
    except (StorageUnavailable, IntakeBusy, TooManySubmissions) as exc:
        log.warning("POST %s: %s", request.url.path, exc.code)
        return render_form(request, form, values, notice=exc, status_code=exc.status)
    target = form.thank_you_url or request.url_for("thanks", slug=form.slug).path
    return RedirectResponse(target, status_code=303)


async def thanks(request: Request) -> Response:
    site = site_of(request)
    form = site.forms.get(request.path_params["slug"])
    choice = LanguageChoice.of(request, site.settings)
    return site.templates.TemplateResponse(
        request,
        "thanks.html",
        {
            "form": choice.shown(form),
            "clinic": form.identity(site.settings.clinic_identity()),
            "framed": framed(request),
            "words": choice.words(form),
        },
        headers={
            "Content-Security-Policy": content_security_policy(form, request),
            "Vary": choice.vary("Sec-Fetch-Dest"),
        },
    )


async def favicon(request: Request) -> Response:
    return FileResponse(
        FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


routes = [
    Route("/f/{slug}", show_form, methods=["GET"], name="show_form"),
    Route("/f/{slug}", submit_form, methods=["POST"], name="submit_form"),
    Route("/f/{slug}/thanks", thanks, methods=["GET"], name="thanks"),
    Route("/favicon.ico", favicon, methods=["GET"], name="favicon"),
]
