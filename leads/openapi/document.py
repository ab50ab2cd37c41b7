"""``GET /openapi.json``: the OpenAPI 3.1 description of every public and staff endpoint,
written as data from the helpers in :mod:`leads.openapi.schemas` (the staff side's
paths are in :mod:`leads.openapi.staff`). It is built per app, from that app's forms,
so the form slugs it lists are the ones this server takes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leads.core.forms import FormCatalog
from leads.core.vocabulary import ATTRIBUTION
from leads.openapi.schemas import (
    RETRY_AFTER,
    Schema,
    answer,
    component_schemas,
    enum,
    header,
    obj,
    problems,
    ref,
)
from leads.openapi.staff import SECURITY_SCHEMES, staff_paths
from leads.services import site_of

HTML = {"text/html": {"schema": {"type": "string"}}}


def _page(description: str, **extra: Any) -> Schema:
    return {"description": description, "content": HTML, **extra}


def _slug(forms: FormCatalog) -> Schema:
    return {
        "name": "slug",
        "in": "path",
        "required": True,
        "description": "A form's slug; another slug answers 404.",
        "schema": enum(forms.forms),
    }


def _query(name: str, schema: Schema, description: str | None = None) -> Schema:
    parameter: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def public_paths(forms: FormCatalog) -> dict[str, Schema]:
    health = obj({"status": {"type": "string"}}, required=("status",))
    ready = obj({"status": {"type": "string"}, "database": {"type": "string"}})
    # Kept in the form's hidden fields when usable, else dropped: any value is taken.
    shown = [f for f in ATTRIBUTION if f == "page_url" or f.startswith("utm_")]
    tracking = [_query(f, {"type": "string"}) for f in shown]
    slug = _slug(forms)
    form_body = {"schema": ref("FormSubmission")}
    return {
        "/api/leads": {
            "post": {
                "operationId": "createLead",
                "summary": "Send an enquiry (JSON)",
                "tags": ["public"],
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "A fresh UUID per enquiry: a retry gets the first answer.",
                        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("Submission")}},
                },
                "responses": {
                    "201": answer(
                        "Stored (or replayed). The id is the submission's receipt, not a lead's.",
                        ref("Receipt"),
                        headers={"Idempotent-Replayed": header("true when replayed")},
                    ),
                    **problems(400, 403, 413, 415, 422, 429, 503),
                },
            }
        },
        "/api/form-token": {
            "get": {
                "operationId": "getFormToken",
                "summary": "A time-trap token for a site's own form",
                "tags": ["public"],
                "parameters": [
                    _query("form", enum(["", *forms.forms]), "The default form if blank.")
                ],
                "responses": {"200": answer("A token", ref("FormToken")), **problems(404)},
            }
        },
        "/embed.js": {
            "get": {
                "operationId": "getEmbedScript",
                "summary": "The script that fills in form_token, page_url and utm_*",
                "tags": ["public"],
                "responses": {
                    "200": answer("The script", {"type": "string"}, media_type="text/javascript")
                },
            }
        },
        "/f/{slug}": {
            "get": {
                "operationId": "showForm",
                "summary": "The hosted form",
                "tags": ["hosted form"],
                "parameters": [slug, *tracking],
                "responses": {"200": _page("The form page"), **problems(404, html=True)},
            },
            "post": {
                "operationId": "submitForm",
                "summary": "Send the hosted form (or a site's plain HTML form)",
                "tags": ["hosted form"],
                "parameters": [slug],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": form_body,
                        "multipart/form-data": form_body,
                    },
                },
                "responses": {
                    "303": {
                        "description": "Stored: on to the form's thank-you address",
                        "headers": {"Location": header("The thank-you address")},
                    },
                    "422": _page("The form again, each problem beside its field"),
                    "429": _page(
                        "The form again, with how long to wait",
                        headers={"Retry-After": RETRY_AFTER},
                    ),
                    "503": _page(
                        "The form again: try in a moment", headers={"Retry-After": RETRY_AFTER}
                    ),
                    **problems(400, 403, 404, 413, 415, html=True),
                },
            },
        },
        "/f/{slug}/thanks": {
            "get": {
                "operationId": "showThanks",
                "summary": "The hosted form's thank-you page",
                "tags": ["hosted form"],
                "parameters": [slug],
                "responses": {"200": _page("The thank-you page"), **problems(404, html=True)},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process answers",
                "tags": ["operations"],
                "responses": {"200": answer("Alive", health)},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database answers",
                "tags": ["operations"],
                "responses": {
                    "200": answer("Ready", ready),
                    "503": answer("Not ready", ready, headers={"Retry-After": RETRY_AFTER}),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This description",
                "tags": ["operations"],
                "responses": {"200": answer("OpenAPI 3.1", {"type": "object"})},
            }
        },
    }


def openapi_document(forms: FormCatalog) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "leads",
            "version": "1",
            "description": "Enquiries from a clinic's website, and the staff API to follow them "
            "up. Errors are application/problem+json (RFC 9457). See docs/api.md.",
        },
        "paths": {**public_paths(forms), **staff_paths()},
        "components": {"schemas": component_schemas(forms), "securitySchemes": SECURITY_SCHEMES},
    }


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document(site_of(request).forms))


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
