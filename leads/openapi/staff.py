"""The staff API's part of ``/openapi.json``: ``/api/staff/...`` (leads.staff.api and
stats_api), its security schemes, and the links from a list to one lead and on."""

from __future__ import annotations

from typing import Any

from leads.core.vocabulary import LeadStatus
from leads.openapi.schemas import (
    NOT_BLANK,
    UUID,
    Schema,
    answer,
    enum,
    header,
    nullable,
    obj,
    problems,
    ref,
)
from leads.staff.access import CSRF_HEADER
from leads.staff.listing import MAX_LIMIT, MAX_QUERY_LENGTH
from leads.staff.notes import MAX_NOTE_LENGTH
from leads.staff.sessions import COOKIE
from leads.staff.stats import MAX_WEEKS
from leads.staff.stats_api import DEFAULT_WEEKS

SECURITY_SCHEMES = {
    "bearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `leads token create` (--scope read or write).",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": COOKIE,
        "description": "A signed-in staff session (`__Host-` prefixed over HTTPS).",
    },
    "csrfToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-Token",
        "description": "With a session, every change also sends the session's CSRF token.",
    },
}
assert SECURITY_SCHEMES["csrfToken"]["name"].lower() == CSRF_HEADER
READ: list[dict[str, list[str]]] = [{"bearerToken": []}, {"session": []}]
WRITE: list[dict[str, list[str]]] = [{"bearerToken": []}, {"session": [], "csrfToken": []}]

NO_STORE = {"Cache-Control": header("no-store")}
ETAG = {**NO_STORE, "ETag": header('The lead\'s version, e.g. "3"', {"type": "string"})}
LEAD_ID = {"name": "lead_id", "in": "path", "required": True, "schema": UUID}
BOOLEAN = enum(("true", "false"))


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


FILTERS = [
    _query("status", enum(LeadStatus), "Leads with this status."),
    _query("form", {"type": "string"}, "Leads of this form (a slug)."),
    _query("spam", BOOLEAN, "true: the spam folder (default false)."),
    _query("created_after", {"type": "string", "format": "date-time"},
           "Inclusive; a date or date and time, without an offset in LEADS_TIMEZONE."),
    _query("created_before", {"type": "string", "format": "date-time"},
           "Exclusive; as created_after."),
    _query("q", {"type": "string", "maxLength": MAX_QUERY_LENGTH},
           "A search in the name, email and phone number (by its digits)."),
    _query("assigned_to", {"type": "string", "pattern": "(@|^[Nn][Oo][Nn][Ee]$)"},
           "A member of staff's email, or none."),
    _query("overdue", BOOLEAN, "true: still new past the follow-up deadline; false: the others."),
]  # fmt: skip


def _lead_link(operation: str, description: str) -> Schema:
    return {"operationId": operation, "parameters": {"lead_id": "$response.body#/id"},
            "description": description}  # fmt: skip


FROM_ONE_LEAD = {
    "PatchLead": {
        "operationId": "patchLead",
        "parameters": {"lead_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"},
        "description": "Change it, if nobody has since",
    },
    "GetLead": _lead_link("getLead", "Read it again"),
    "AddNote": _lead_link("addNote", "Write a note on it"),
    "Release": _lead_link("releaseLead", "Take it out of the spam folder"),
    "Unmerge": _lead_link("unmergeLead", "Take it out of the lead it is merged into"),
}


def _lead_answer(description: str, status: str = "200") -> dict[str, Schema]:
    return {status: answer(description, ref("LeadDetail"), headers=ETAG, links=FROM_ONE_LEAD)}


def _op(operation_id: str, summary: str, responses: dict[str, Schema], *, write: bool = False,
        parameters: list[Schema] | None = None, body: Schema | None = None) -> Schema:  # fmt: skip
    statuses = (400, 401, 403, 404, 409, 412, 413, 415, 422) if body else (401, 403, 404, 409)
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["staff"],
        "security": WRITE if write else READ,
        "parameters": parameters if parameters is not None else [LEAD_ID],
        "responses": {**responses, **problems(*statuses)},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def staff_paths() -> dict[str, Any]:
    one = "/api/staff/leads/{lead_id}"
    list_link = {
        "GetFirstLead": {
            "operationId": "getLead",
            "parameters": {"lead_id": "$response.body#/items/0/id"},
        },
        "NextPage": {
            "operationId": "listLeads",
            "parameters": {"cursor": "$response.body#/next_cursor"},
        },
    }
    page = [
        *FILTERS,
        _query(
            "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Leads per page (50)."
        ),
        _query(
            "cursor", {"type": "string", "format": "cursor"}, "The next_cursor of a page before."
        ),
    ]
    change = obj(
        {"status": enum(LeadStatus), "assigned_to": nullable({"type": "string", "pattern": "@"})},
        additionalProperties=False,
    )
    # Only text is read; other members are ignored.
    note = obj({"text": {"type": "string", "maxLength": MAX_NOTE_LENGTH, "pattern": NOT_BLANK}},
               required=("text",))  # fmt: skip
    target = obj({"into": UUID}, required=("into",), additionalProperties=False)
    # Exactly one of email and phone names the person.
    subject = obj(
        {"email": {"type": "string"}, "phone": {"type": "string"}, "dry_run": {"type": "boolean"}},
        additionalProperties=False,
        oneOf=[{"required": ["email"], "not": {"required": ["phone"]}},
               {"required": ["phone"], "not": {"required": ["email"]}}],
    )  # fmt: skip
    erased = obj({"dry_run": {"type": "boolean"}}, required=("dry_run",),
                 additionalProperties={"type": "integer"})  # fmt: skip
    weeks = {"type": "integer", "minimum": 1, "maximum": MAX_WEEKS, "default": DEFAULT_WEEKS}
    if_match = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
                "description": "The ETag read: 412 if the lead has changed since."}  # fmt: skip
    message_id = {"name": "message_id", "in": "path", "required": True, "schema": UUID}
    return {
        "/api/staff/leads": {"get": _op(
            "listLeads", "Leads, newest first, filtered, a page at a time",
            {"200": answer("A page", ref("LeadPage"), headers=NO_STORE, links=list_link),
             **problems(422)}, parameters=page)},
        "/api/staff/leads.csv": {"get": _op(
            "downloadLeads", "The list's leads as CSV",
            {"200": answer("CSV", {"type": "string"}, media_type="text/csv", headers=NO_STORE),
             **problems(422)}, parameters=FILTERS)},
        one: {
            "get": _op("getLead", "One lead with its timeline", _lead_answer("The lead")),
            "patch": _op("patchLead", "Change the status or who is on it",
                         _lead_answer("The lead as changed"), write=True,
                         parameters=[LEAD_ID, if_match], body=change),
        },
        f"{one}/notes": {"post": _op(
            "addNote", "Write a note on the timeline",
            {"201": answer("The note's timeline entry", ref("TimelineEntry"), headers=NO_STORE)},
            write=True, body=note)},
        f"{one}/release": {"post": _op("releaseLead", "Not spam: back to new, notified",
                                       _lead_answer("The lead"), write=True)},
        f"{one}/messages/{{message_id}}/resend": {"post": _op(
            "resendMessage", "Send a notification again", _lead_answer("The lead"),
            write=True, parameters=[LEAD_ID, message_id])},
        f"{one}/merge": {"post": _op("mergeLead", "Fold this lead into another",
                                     _lead_answer("The lead, merged"), write=True, body=target)},
        f"{one}/unmerge": {"post": _op("unmergeLead", "Take it out of the lead it was merged into",
                                       _lead_answer("The lead, on its own"), write=True)},
        f"{one}/withdraw-consent": {"post": _op(
            "withdrawConsent", "The visitor withdrew consent: no more autoreplies or contact",
            _lead_answer("The lead"), write=True)},
        "/api/staff/erasures": {"post": _op(
            "eraseSubject", "Erase a person by email or phone (admins' sessions only)",
            {"200": answer("What was removed, by kind", erased, headers=NO_STORE)},
            write=True, parameters=[], body=subject)},
        "/api/staff/stats": {"get": _op(
            "stats", "Response times, week by week",
            {"200": answer("The weeks", ref("Stats"), headers=NO_STORE), **problems(422)},
            parameters=[_query("weeks", weeks, "How many weeks back.")])},
    }  # fmt: skip
