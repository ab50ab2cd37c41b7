"""The building blocks of ``/openapi.json`` (:mod:`leads.openapi.document`): small helpers that
write OpenAPI objects, and the shared component schemas. Limits and names come from the
modules that enforce them, so the description cannot drift from the code unnoticed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from leads.core.forms import FormCatalog
from leads.core.vocabulary import ATTRIBUTION, Channel, LeadStatus, MessageKind, OutboxStatus
from leads.intake.fields import MAX_PHONE_INPUT
from leads.intake.submission import CAPTCHA_FIELDS, CONTACT_METHODS, MAX_ATTRIBUTION, MAX_NAME
from leads.intake.submission import MAX_MESSAGE as MAX_MESSAGE_LENGTH
from leads.web.problems import PROBLEM_JSON

Schema = dict[str, Any]

# What one-line text may not hold (leads/intake/fields.py): C0 and C1 controls, the Unicode
# line breaks, and the bidirectional embeddings, overrides and isolates.
_ONE_LINE_FORBIDDEN = r"\x00-\x1f\x7f-\x9f\u0085\u2028\u2029\u202a-\u202e\u2066-\u2069"
# A message may also hold new lines, tabs and bidirectional controls.
_MULTILINE_FORBIDDEN = r"\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f"
ONE_LINE = rf"^[^{_ONE_LINE_FORBIDDEN}]*$"
MULTILINE = rf"^[^{_MULTILINE_FORBIDDEN}]*$"
# At least one character that draws: a letter, digit, punctuation mark or symbol.
VISIBLE = rf"^[^{_ONE_LINE_FORBIDDEN}]*[\p{{L}}\p{{N}}\p{{P}}\p{{S}}][^{_ONE_LINE_FORBIDDEN}]*$"
# Not blank: something besides white space (a note).
NOT_BLANK = rf"^[^{_MULTILINE_FORBIDDEN}]*[^\s{_MULTILINE_FORBIDDEN}][^{_MULTILINE_FORBIDDEN}]*$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def enum(values: Iterable[str]) -> Schema:
    return {"type": "string", "enum": [str(v) for v in values]}


def text(max_length: int, *, multiline: bool = False, description: str | None = None) -> Schema:
    schema: Schema = {
        "type": "string",
        "maxLength": max_length,
        "pattern": MULTILINE if multiline else ONE_LINE,
    }
    if description:
        schema["description"] = description
    return schema


def obj(properties: dict[str, Schema], *, required: Iterable[str] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def json_content(schema: Schema, media_type: str = "application/json") -> Schema:
    return {media_type: {"schema": schema}}


def header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or {"type": "string"}}


RETRY_AFTER = header(
    "Seconds to wait before trying again.", {"type": "string", "pattern": "^[0-9]+$"}
)


def answer(
    description: str,
    schema: Schema | None = None,
    *,
    media_type: str = "application/json",
    headers: dict[str, Schema] | None = None,
    links: dict[str, Schema] | None = None,
) -> Schema:
    response: Schema = {"description": description}
    if schema is not None:
        response["content"] = json_content(schema, media_type)
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return response


def problem(status: int, description: str, *, html: bool = False) -> Schema:
    """An error answer: problem+json, and for browsers (``Accept: text/html``) the error page."""
    content = json_content(ref("ValidationProblem" if status == 422 else "Problem"), PROBLEM_JSON)
    if html:
        content["text/html"] = {"schema": {"type": "string"}}
    response: Schema = {"description": description, "content": content}
    if status in (429, 503):
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


def problems(*statuses: int, html: bool = False) -> dict[str, Schema]:
    """The standard error answers by status."""
    return {str(status): problem(status, PROBLEM_WORDS[status], html=html) for status in statuses}


PROBLEM_WORDS = {
    400: "400 malformed_body or invalid_idempotency_key: the body or a header is unusable",
    401: "401 not_authenticated: no session and no token, or a token that is not valid",
    403: "403 not_allowed, csrf_failed or origin_not_allowed",
    404: "404 not found (lead_not_found, message_not_found, form_not_found, not_found)",
    409: "409 not_spam, not_merged or message_pending: not possible in the lead's state",
    412: "412 precondition_failed: If-Match names a version that is no longer current",
    413: "413 body_too_large: above LEADS_MAX_BODY_BYTES",
    415: "415 unsupported_media_type",
    422: "422 invalid_submission (every bad field in errors) or idempotency_key_reused",
    429: "429 rate_limited: over LEADS_RATE_LIMIT; Retry-After says when",
    503: "503 storage_unavailable or intake_busy; Retry-After says when",
}

UUID = {"type": "string", "format": "uuid"}
MOMENT = {"type": "string", "format": "date-time"}


def _submission_fields(forms: FormCatalog) -> dict[str, Schema]:
    interests = sorted({i for form in forms.forms.values() for i in form.interests})
    return {
        "name": {
            **text(MAX_NAME),
            "pattern": VISIBLE,
            "description": "At least one visible character.",
        },
        "email": {
            **text(320),
            "format": "email",
            "description": "One of email or phone is required.",
        },
        "phone": {
            **text(MAX_PHONE_INPUT),
            "format": "phone",
            "description": "A valid number; without +country, read in LEADS_DEFAULT_REGION.",
        },
        "preferred_contact": enum(CONTACT_METHODS),
        "message": text(MAX_MESSAGE_LENGTH, multiline=True),
        "interest": {**enum(interests), "description": "One of the interests of the form."},
        "form": {**enum(["", *forms.forms]), "description": "The default form if blank."},
        "website": {"description": "The honeypot: leave it out or empty (else flagged as spam)."},
        # Tokens that are not plain text count as not sent: any value is taken.
        "form_token": {"description": "From GET /api/form-token."},
        **{f: {"description": "The captcha's answer."} for f in CAPTCHA_FIELDS},
        **{field: text(MAX_ATTRIBUTION) for field in ATTRIBUTION},
    }


CONSENT_WORDS = {
    "type": "string",
    "pattern": "^\\s*([Tt][Rr][Uu][Ee]|[Oo][Nn]|[Yy][Ee][Ss]|1)\\s*$",
}


BLANK = {"type": "string", "pattern": "^\\s*$"}  # "" or only spaces: not given


def _given(field: str) -> Schema:
    return {"required": [field], "properties": {field: {"type": "string", "pattern": "\\S"}}}


def submission(forms: FormCatalog, *, json_body: bool) -> Schema:
    """The fields of an enquiry: as JSON (null means not given) or as a browser posts them.
    Every rule between fields is here too: an email or a phone, and the one the preferred
    way of contact needs."""
    fields = _submission_fields(forms)
    if not json_body:  # the hosted form keeps what it can use of these, and drops the rest
        fields.update({f: {"type": "string"} for f in ATTRIBUTION})
        fields.update({f: {"type": "string"} for f in ("form_token", *CAPTCHA_FIELDS)})
        fields["form"] = {"type": "string", "description": "Ignored: the address names the form."}
    for contact in ("email", "phone"):
        fields[contact] = {"anyOf": [fields[contact], BLANK]}
    properties = {name: nullable(s) if json_body else s for name, s in fields.items()}
    properties["name"] = fields["name"]  # required, and never null
    properties["consent"] = (
        {"anyOf": [{"const": True}, CONSENT_WORDS]} if json_body else CONSENT_WORDS
    )
    needs = {"email": "email", "phone": "phone", "text": "phone"}
    return obj(
        properties,
        required=("name", "consent"),
        additionalProperties=False,
        anyOf=[_given("email"), _given("phone")],
        allOf=[
            {
                "if": {
                    "required": ["preferred_contact"],
                    "properties": {"preferred_contact": {"const": way}},
                },
                "then": _given(field),
            }
            for way, field in needs.items()
        ],
    )


_PROBLEM_FIELDS: dict[str, Schema] = {
    "type": {"type": "string", "pattern": "^urn:leads:problem:[a-z0-9_]+$"},
    "title": {"type": "string"},
    "status": {"type": "integer", "minimum": 100, "maximum": 599},
    "detail": {"type": "string"},
    "code": {"type": "string"},
}
_FIELD_ERROR = obj(
    {"field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"}},
    required=("field", "code", "message"),
)
_NOTIFICATION = obj(
    {
        "id": UUID,
        "kind": enum(MessageKind),
        "channel": enum(Channel),
        "target": nullable({"type": "string"}),
        "status": enum(OutboxStatus),
        "attempts": {"type": "integer"},
        "last_error": nullable({"type": "string"}),
        "delivered_at": nullable(MOMENT),
    },
    required=("id", "kind", "channel", "status", "attempts"),
)
_LEAD_FIELDS: dict[str, Schema] = {
    "id": UUID,
    "created_at": MOMENT,
    "form": {"type": "string"},
    "name": {"type": "string"},
    "email": nullable({"type": "string"}),
    "phone": nullable({"type": "string"}),
    "preferred_contact": nullable(enum(CONTACT_METHODS)),
    "message": nullable({"type": "string"}),
    "interest": nullable({"type": "string"}),
    "status": enum(LeadStatus),
    "spam": {"type": "boolean"},
    "spam_reason": nullable({"type": "string"}),
    "enquiry_count": {"type": "integer"},
    "enquiry_ids": {"type": "array", "items": UUID},
    "duplicate_of": nullable(UUID),
    "notifications": {"type": "array", "items": _NOTIFICATION},
    "consent": {"type": "object"},
    "enquiries": {"type": "array", "items": {"type": "object"}},
    "assigned_to": nullable({"type": "string"}),
    "first_response_at": nullable(MOMENT),
    "merged_into": nullable(UUID),
    "version": {"type": "integer", "minimum": 1},
}
_TIMELINE_ENTRY = obj(
    {"at": MOMENT, "kind": {"type": "string"}, "actor": {"type": "string"}},
    required=("at", "kind", "actor"),
)
_WEEK = obj(
    {
        "week": {"type": "string", "format": "date"},
        "leads": {"type": "integer"},
        "median_response_seconds": nullable({"type": "number"}),
        "p90_response_seconds": nullable({"type": "number"}),
        "answered_within_deadline": nullable({"type": "number"}),
        "waiting": {"type": "integer"},
    },
    required=("week", "leads", "waiting"),
)

_COMPONENTS: dict[str, Schema] = {
    "Problem": obj(_PROBLEM_FIELDS, required=tuple(_PROBLEM_FIELDS)),
    "ValidationProblem": obj(
        {**_PROBLEM_FIELDS, "errors": {"type": "array", "items": _FIELD_ERROR}},
        required=tuple(_PROBLEM_FIELDS),
    ),
    "Receipt": obj({"id": UUID, "status": {"const": "received"}}, required=("id", "status")),
    "FormToken": obj(
        {
            "form": {"type": "string"},
            "form_token": {"type": "string"},
            "min_fill_seconds": {"type": "number"},
            "expires_in": {"type": "integer"},
        },
        required=("form", "form_token", "min_fill_seconds", "expires_in"),
    ),
    "Lead": obj(_LEAD_FIELDS, required=("id", "created_at", "status", "version")),
    "LeadDetail": {
        "allOf": [
            ref("Lead"),
            obj(
                {
                    "possible_duplicates": {"type": "array", "items": UUID},
                    "merged_leads": {"type": "array", "items": UUID},
                    "timeline": {"type": "array", "items": _TIMELINE_ENTRY},
                },
                required=("possible_duplicates", "merged_leads", "timeline"),
            ),
        ]
    },
    "LeadPage": obj(
        {
            "items": {"type": "array", "items": ref("Lead")},
            "next_cursor": nullable({"type": "string"}),
        },
        required=("items", "next_cursor"),
    ),
    "TimelineEntry": _TIMELINE_ENTRY,
    "Stats": obj(
        {
            "weeks": {"type": "array", "items": _WEEK},
            "follow_up_hours": {"type": "number"},
            "timezone": {"type": "string"},
        },
        required=("weeks", "follow_up_hours", "timezone"),
    ),
}


def component_schemas(forms: FormCatalog) -> dict[str, Schema]:
    return {
        **_COMPONENTS,
        "Submission": submission(forms, json_body=True),
        "FormSubmission": submission(forms, json_body=False),
    }
