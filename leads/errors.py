"""The one exception tree of the project.

    LeadsError                      root: anything leads raises on purpose
    ├── ConfigurationError          a setting is missing or wrong (CLI: one line, exit 2)
    ├── UsageError                  a command was given something it cannot use (an id that is none)
    ├── DatabaseNotReady            no database there yet, or its schema is behind: `leads migrate`
    ├── NotFound                    what was named by its id is not there
    │   ├── LeadNotFound
    │   ├── MessageNotFound         (or it was delivered already: nothing to retry)
    │   ├── TokenNotFound           no API token of that name
    │   └── UserNotFound            no staff account with that email
    ├── LeadNotSpam                 a lead that is not flagged cannot be released
    ├── DuplicateName               a user or token of that name exists already
    ├── DeliveryError               a notification was not delivered this time
    │   ├── TransientDeliveryError  try again later (connection, timeout, SMTP 4xx, HTTP 5xx...)
    │   └── PermanentDeliveryError  dead letter at once (SMTP 5xx, other HTTP 4xx)
    │       └── EndpointGone        a webhook answered 410: switch that endpoint off
    └── HTTPProblem                 reaches a client as application/problem+json (or HTML)
        ├── MalformedBody           400  the body is not what its content type says
        ├── InvalidIdempotencyKey   400  the Idempotency-Key header is unusable
        ├── NotAuthenticated        401  a staff route without a valid session or token
        ├── SignInRequired          303  a staff page asked for by a browser not signed in
        ├── NotAllowed              403  signed in, but this needs a write token or an admin
        ├── CsrfFailed              403  a session's change without its CSRF token, or cross-site
        ├── OriginNotAllowed        403  a browser on another site (LEADS_ALLOWED_ORIGINS)
        ├── FormNotFound            404  no form with that slug
        ├── StaffLeadNotFound       404  the staff API was asked for a lead that is not there
        ├── StaffMessageNotFound    404  no such notification of this lead
        ├── LeadNotInSpam           409  only a lead in the spam folder can be released
        ├── LeadNotMerged           409  only a merged lead can be unmerged
        ├── MessageStillPending     409  a notification on its way cannot be sent again yet
        ├── PreconditionFailed      412  If-Match names a version that is no longer current
        ├── BodyTooLarge            413  above LEADS_MAX_BODY_BYTES
        ├── UnsupportedMediaType    415  a content type the endpoint does not take
        ├── TooManySubmissions      429  over LEADS_RATE_LIMIT; Retry-After says when
        ├── TooManyLogins           429  too many failed sign-ins; Retry-After says when
        ├── InvalidSubmission       422  field-level errors, every bad field named
        ├── IdempotencyKeyReused    422  this client's key came with another submission before
        ├── StorageUnavailable      503  the database cannot take the write right now
        └── IntakeBusy              503  the intake queue is full: try again in a second

Lower-level errors (database drivers, parsers) are translated into these at the boundary
with ``raise ... from exc`` so that callers only ever decide on our own types.

What a visitor may read (the titles and details of the intake's problems, every field
error the intake makes) is English marked with ``N_``, its figures kept apart as
parameters: the door that answers words it in the visitor's language (``body(words)``).
The ``type``, ``code``, ``status``, field names and headers never change with the language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leads.translatable import ENGLISH, N_, Words, worded


class LeadsError(Exception):
    """Root of every error leads raises on purpose."""


class ConfigurationError(LeadsError):
    """A setting is missing or has a value that cannot work."""


class UsageError(LeadsError):
    """A command (or a staff action) was given a value it cannot use."""


class DatabaseNotReady(LeadsError):
    """The database is not there yet, or its schema is behind this version of leads."""


class NotFound(LeadsError):
    """What was named by its id does not exist."""


class LeadNotFound(NotFound):
    pass


class MessageNotFound(NotFound):
    pass


class TokenNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class LeadNotSpam(LeadsError):
    """Only a lead flagged as spam can be released."""


class DuplicateName(LeadsError):
    """A user with that email, or a token with that name, exists already."""


class DeliveryError(LeadsError):
    """A notification was not delivered; the subclass decides whether to retry."""


class TransientDeliveryError(DeliveryError):
    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    pass


class EndpointGone(PermanentDeliveryError):
    pass


class HTTPProblem(LeadsError):
    """An error with an HTTP status and a stable machine-readable code."""

    status: int = 500
    code: str = "internal_error"
    title: str = N_("Something went wrong on our side")
    # The language of the form it concerns, once the intake knows it (a Language value).
    language: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        params: Mapping[str, object] | None = None,
    ):
        self.detail_text = detail or self.title  # English, with %(name)s for ``params``
        self.params = dict(params or {})
        self.detail = worded(ENGLISH, self.detail_text, self.params)
        super().__init__(self.detail)
        self.headers = headers or {}

    def worded_title(self, words: Words = ENGLISH) -> str:
        return words.gettext(self.title)

    def worded_detail(self, words: Words = ENGLISH) -> str:
        return worded(words, self.detail_text, self.params)

    def body(self, words: Words = ENGLISH) -> dict[str, Any]:
        """The RFC 9457 problem document, its title and detail in ``words``' language."""
        return {
            "type": f"urn:leads:problem:{self.code}",
            "title": self.worded_title(words),
            "status": self.status,
            "detail": self.worded_detail(words),
            "code": self.code,
        }


class MalformedBody(HTTPProblem):
    status = 400
    code = "malformed_body"
    title = N_("The request body could not be read")


class InvalidIdempotencyKey(HTTPProblem):
    status = 400
    code = "invalid_idempotency_key"
    title = "The Idempotency-Key header must be 1-255 visible ASCII characters"


class NotAuthenticated(HTTPProblem):
    status = 401
    code = "not_authenticated"
    title = "Sign in, or send an API token"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="leads"'})


class NotAllowed(HTTPProblem):
    status = 403
    code = "not_allowed"
    title = "This account or token may not do this"


class SignInRequired(HTTPProblem):
    """Not an error for the browser: it is sent on to the sign-in page, which comes back
    to ``next`` (this page) afterwards."""

    status = 303
    code = "sign_in_required"
    title = "Sign in to see this page"

    def __init__(self, next_path: str):
        from urllib.parse import quote

        super().__init__(headers={"Location": f"/staff/login?next={quote(next_path, safe='')}"})


class CsrfFailed(HTTPProblem):
    status = 403
    code = "csrf_failed"
    title = "This request did not come from a page of this service; reload the page and try again"


class OriginNotAllowed(HTTPProblem):
    status = 403
    code = "origin_not_allowed"
    title = N_("Submissions from this site are not accepted")


class FormNotFound(HTTPProblem):
    status = 404
    code = "form_not_found"
    title = N_("There is no form at this address")


class StaffLeadNotFound(HTTPProblem):
    status = 404
    code = "lead_not_found"
    title = "There is no lead with this id"


class StaffMessageNotFound(HTTPProblem):
    status = 404
    code = "message_not_found"
    title = "This lead has no notification with this id"


class LeadNotInSpam(HTTPProblem):
    status = 409
    code = "not_spam"
    title = "This lead is not in the spam folder"


class LeadNotMerged(HTTPProblem):
    status = 409
    code = "not_merged"
    title = "This lead is not merged into another"


class MessageStillPending(HTTPProblem):
    status = 409
    code = "message_pending"
    title = "This notification is still on its way; send it again once delivered or failed"


class PreconditionFailed(HTTPProblem):
    status = 412
    code = "precondition_failed"
    title = "Someone else changed this lead; reload it and try again"


class BodyTooLarge(HTTPProblem):
    status = 413
    code = "body_too_large"
    title = N_("The request body is too large")


class UnsupportedMediaType(HTTPProblem):
    status = 415
    code = "unsupported_media_type"
    title = N_("This content type is not accepted here")


class IdempotencyKeyReused(HTTPProblem):
    status = 422
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was already used for a different submission"


class TooManySubmissions(HTTPProblem):
    status = 429
    code = "rate_limited"
    title = N_("Too many submissions; please wait a little and try again")

    def __init__(self, *, retry_after: int, close: bool = False):
        headers = {"Retry-After": str(retry_after)}
        if close:  # a client flooding us over keep-alive connections must reconnect first
            headers["Connection"] = "close"
        if retry_after < 90:
            detail = N_("Please try again in %(seconds)s seconds.")
            params = {"seconds": retry_after}
        else:
            detail = N_("Please try again in about %(minutes)s minutes.")
            params = {"minutes": max(1, round(retry_after / 60))}
        super().__init__(detail, headers=headers, params=params)


class TooManyLogins(HTTPProblem):
    status = 429
    code = "too_many_logins"
    title = "Too many failed sign-ins; please wait a little and try again"

    def __init__(self, *, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        wait = f"{retry_after} seconds" if retry_after < 90 else f"about {minutes} minutes"
        super().__init__(f"Please try again in {wait}.", headers={"Retry-After": str(retry_after)})


class StorageUnavailable(HTTPProblem):
    status = 503
    code = "storage_unavailable"
    title = N_("We could not save this right now; please try again in a moment")

    def __init__(self, detail: str | None = None, *, retry_after: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class IntakeBusy(HTTPProblem):
    status = 503
    code = "intake_busy"
    title = N_("We are very busy right now; please send this again in a moment")

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"Retry-After": "1"})


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field, as a web page shows it next to that field. ``text`` is
    the sentence in English, with ``%(name)s`` for each of ``params``: the catalogs' msgid."""

    field: str
    code: str
    text: str
    params: tuple[tuple[str, str | int], ...] = ()

    @property
    def message(self) -> str:
        return self.worded()

    def worded(self, words: Words = ENGLISH) -> str:
        return worded(words, self.text, dict(self.params))

    def as_dict(self, words: Words = ENGLISH) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.worded(words)}


class InvalidSubmission(HTTPProblem):
    status = 422
    code = "invalid_submission"
    title = N_("Some fields need attention")

    def __init__(self, errors: list[FieldError], *, language: str | None = None):
        fields = ", ".join(dict.fromkeys(e.field for e in errors))
        super().__init__(N_("Please check: %(fields)s."), params={"fields": fields})
        self.errors = errors
        self.language = language

    def body(self, words: Words = ENGLISH) -> dict[str, Any]:
        return {**super().body(words), "errors": [e.as_dict(words) for e in self.errors]}

    def by_field(self) -> dict[str, FieldError]:
        """The first error of each field, for rendering beside it."""
        first: dict[str, FieldError] = {}
        for error in self.errors:
            first.setdefault(error.field, error)
        return first
