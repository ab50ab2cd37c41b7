"""One intake pipeline behind both doors (``POST /api/leads`` and ``POST /f/{slug}``): from
the raw fields a door has read to a committed receipt. The doors differ only in how they
read the body and how they word an error for their reader.

    parse -> (replay a known Idempotency-Key) -> screen -> capture -> log and wake

Every submission's outcome is counted here (``leads_submissions_total``), and by the doors
for a refusal met before the body is read (:func:`count_refusal`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request

from leads.core.vocabulary import SubmissionOutcome
from leads.errors import (
    HTTPProblem,
    IdempotencyKeyReused,
    IntakeBusy,
    InvalidSubmission,
    StorageUnavailable,
    TooManySubmissions,
)
from leads.i18n.choice import LanguageChoice
from leads.intake.attribution import from_referer
from leads.intake.capture import CaptureJob, RequestMeta
from leads.intake.receipts import IdempotencyKey, Receipt, replay_of
from leads.intake.submission import parse_submission
from leads.services import Services, services_of

log = logging.getLogger("leads.intake")

# What each error a submission can meet counts as; any other error is not counted.
ERROR_OUTCOMES: tuple[tuple[type[HTTPProblem], SubmissionOutcome], ...] = (
    (InvalidSubmission, SubmissionOutcome.INVALID),
    (IdempotencyKeyReused, SubmissionOutcome.INVALID),
    (TooManySubmissions, SubmissionOutcome.RATE_LIMITED),
    (IntakeBusy, SubmissionOutcome.BUSY),
    (StorageUnavailable, SubmissionOutcome.UNAVAILABLE),
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the request says besides its fields: who sent it, and from which page."""

    client_ip: str | None
    user_agent: str | None
    origin: str | None
    referer: str | None = None
    languages: LanguageChoice | None = None  # what the visitor's language is chosen from

    @classmethod
    def of(cls, request: Request, client_ip: str | None) -> Arrival:
        agent = request.headers.get("user-agent")
        headers = request.headers
        return cls(
            client_ip,
            agent[:500] if agent else None,
            headers.get("origin"),
            headers.get("referer"),
            LanguageChoice.of(request, services_of(request).settings),
        )


async def take_submission(
    services: Services,
    raw: Mapping[str, object],
    arrival: Arrival,
    *,
    idempotency_key: str | None = None,
    limited: TooManySubmissions | None = None,
) -> Receipt:
    """Parse, replay, screen and store one submission; return its receipt once committed.

    ``limited`` is a refusal the door met before reading (the per-IP test): a retry of a
    request that succeeded still gets its answer, anything else gets the refusal."""
    try:
        receipt = await _take(services, raw, arrival, idempotency_key, limited)
    except HTTPProblem as exc:
        count_refusal(services, exc)
        raise
    if receipt.outcome == "replayed":
        services.metrics.submission(SubmissionOutcome.REPLAYED)
    else:
        services.metrics.submission(
            SubmissionOutcome.SPAM if receipt.spam else SubmissionOutcome.STORED
        )
    return receipt


def count_refusal(services: Services, error: HTTPProblem) -> None:
    """Count a submission that met ``error``: here, or at a door before it read the body."""
    for kind, outcome in ERROR_OUTCOMES:
        if isinstance(error, kind):
            services.metrics.submission(outcome)
            return


async def _take(
    services: Services,
    raw: Mapping[str, object],
    arrival: Arrival,
    idempotency_key: str | None,
    limited: TooManySubmissions | None,
) -> Receipt:
    settings = services.settings
    # A site's own form may not say which page it is on; the browser's Referer does.
    raw = from_referer(raw, arrival.referer)
    submission = parse_submission(
        raw,
        forms=services.forms,
        default_region=settings.default_region,
        languages=arrival.languages,
    )
    scoped = None
    if idempotency_key is not None:
        scoped = IdempotencyKey.of(
            idempotency_key, submission, client_ip=arrival.client_ip, origin=arrival.origin
        )
        if (replayed := await replay_of(services.database, scoped)) is not None:
            return replayed
    if limited is not None:
        raise limited
    submission = await services.defences.screen(submission, ip=arrival.client_ip)
    meta = RequestMeta(client_ip=arrival.client_ip, user_agent=arrival.user_agent)
    receipt = await services.intake.capture(CaptureJob(submission, meta, scoped))
    # Ids only: never names, contact details or messages.
    log.info(
        "lead %s %s (receipt=%s form=%s spam=%s)",
        receipt.lead_id,
        receipt.outcome,
        receipt.id,
        submission.form.slug,
        receipt.spam,
    )
    if receipt.notify and services.dispatcher is not None:
        services.dispatcher.wake()  # this process delivers: now, not at the next poll
    return receipt
