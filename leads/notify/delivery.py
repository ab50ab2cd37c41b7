"""Delivering one claimed message, and deciding what that attempt means for it.

:meth:`Delivery.attempt` sends the message through its channel within
LEADS_DELIVERY_TIMEOUT_SECONDS and returns the *outcome*: a change to write to the outbox
as plain data (delivered; retry at a time from :mod:`leads.notify.retry`; dead letter,
switching a 410 webhook off; a text held until quiet hours end, LEADS_SMS_QUIET_HOURS,
without counting an attempt: :data:`leads.storage.outcomes.Outcome`). It writes nothing
itself: the dispatcher records a turn's outcomes together
(:func:`leads.storage.outcomes.record_outcomes`); a text's channel writes its hand-over marks
itself (:mod:`leads.notify.handovers`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from leads.core.forms import FormCatalog
from leads.core.quiet import QuietHours
from leads.core.routing import NO_ROUTING
from leads.core.vocabulary import Channel, DeliveryOutcome, MessageKind
from leads.errors import EndpointGone, PermanentDeliveryError, TransientDeliveryError
from leads.logs import event
from leads.metrics import Metrics
from leads.notify.channels import (
    ChannelRegistry,
    Clock,
    Notice,
    NotificationChannel,
    builtin_channels,
)
from leads.notify.channels.base import ChannelsOverride, close_channels
from leads.notify.channels.mail import EmailChannel
from leads.notify.digest_content import DigestContent
from leads.notify.handovers import DatabaseHandOvers
from leads.notify.retry import RetryPolicy
from leads.outbound import HTTPClient
from leads.settings import Settings, redact_url
from leads.storage import outcomes
from leads.storage.database import Database
from leads.storage.models import Enquiry, Lead, OutboxMessage
from leads.storage.types import utcnow

log = logging.getLogger("leads.notify")

Outcome = outcomes.Outcome  # what an attempt means for its row, written with the turn's others

# What an attempt meant, as the ``delivery`` log event's ``outcome`` says it.
DELIVERED, RETRY, DEAD, HELD = "delivered", "retry", "dead", "held"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed message and what it announces, loaded when it was claimed."""

    message: OutboxMessage
    lead: Lead | None
    enquiry: Enquiry | None
    target_disabled: bool  # its target (a webhook URL) answered 410 Gone
    digest: DigestContent | None = None  # a digest's list, read as it was claimed


class Delivery:
    """Sends claimed messages through the channels these settings build.

    ``channels`` stands in for some of them (tests: a
    :class:`leads.notify.channels.recording.RecordingChannel`), as ``http_transport`` does
    for the network in :func:`leads.app.create_app`."""

    def __init__(
        self,
        settings: Settings,
        forms: FormCatalog,
        http: HTTPClient,
        *,
        worker: str,
        registry: ChannelRegistry | None = None,
        channels: ChannelsOverride | None = None,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
        timer: Callable[[], float] = time.perf_counter,
        database: Database | None = None,
    ):
        self.settings = settings
        self.forms = forms
        self.metrics = metrics or Metrics()
        self.worker = worker
        self.clock = clock
        self.timer = timer  # how long an attempt took, for the log
        self.retry = RetryPolicy(
            settings.retry_base_seconds, timedelta(hours=settings.retry_give_up_hours)
        )
        self.registry = registry or builtin_channels()
        # With the channels only a form's routing uses (its own webhook URLs).
        routings = [form.routing for form in forms.forms.values()]
        built = self.registry.build(settings, http, clock, routings)
        self.channels: dict[Channel, NotificationChannel] = {**built, **(channels or {})}
        self.quiet = QuietHours.parse(settings.sms_quiet_hours, settings.timezone)
        self.handovers = (
            DatabaseHandOvers(database, worker=worker, clock=clock) if database else None
        )

    async def aclose(self) -> None:
        """Close what the channels keep open (SMTP sessions say QUIT)."""
        await close_channels(self.channels.values())

    async def attempt(self, claim: Claimed) -> Outcome:
        """Send once, and log the attempt: one ``delivery`` event (:mod:`leads.logs`) with
        the message id, channel, kind, outcome (delivered, retry, dead) and duration."""
        message = claim.message
        started = self.timer()
        kind, outcome = await self._attempt(claim)
        duration_ms = round((self.timer() - started) * 1000, 1)
        log.info(
            "notification %s %s (%s, %s)",
            message.id,
            kind,
            message.channel,
            message.kind,
            extra=event(
                "delivery",
                message_id=str(message.id),
                channel=str(message.channel),
                kind=str(message.kind),
                outcome=kind,
                attempt=message.attempts,
                duration_ms=duration_ms,
            ),
        )
        return outcome

    async def _attempt(self, claim: Claimed) -> tuple[str, Outcome]:
        message = claim.message
        if message.channel == Channel.SMS and self.quiet is not None:
            until = self.quiet.held_until(self.clock())
            if until is not None:
                return HELD, self._held(message, until)
        try:
            async with asyncio.timeout(self.settings.delivery_timeout_seconds):
                await self._send(claim)
        except EndpointGone as exc:
            log.error(
                "webhook %s answered 410 Gone: switched OFF; nothing more is sent to it until "
                "an operator runs `leads outbox retry` for one of its messages",
                redact_url(message.target or ""),
            )
            return DEAD, self._dead(message, str(exc), gone=True)
        except PermanentDeliveryError as exc:
            log.warning("notification %s is a dead letter: %s", message.id, exc)
            return DEAD, self._dead(message, str(exc))
        except TransientDeliveryError as exc:
            return self._failed(message, str(exc), exc.retry_after)
        except TimeoutError:
            return self._failed(message, "timed out", None)
        except Exception as exc:  # a bug must not lose the message: retry it, and say so
            log.error(
                "notification %s: unexpected %s", message.id, type(exc).__name__, exc_info=exc
            )
            return self._failed(message, f"unexpected {type(exc).__name__}", None)
        return DELIVERED, self._delivered(message)

    async def _send(self, claim: Claimed) -> None:
        message, lead = claim.message, claim.lead
        if message.kind == MessageKind.DIGEST:
            await self._send_digest(claim)
            return
        if lead is None:
            raise PermanentDeliveryError("the lead no longer exists")
        if message.kind == MessageKind.AUTOREPLY and lead.consent_withdrawn_at is not None:
            raise PermanentDeliveryError("consent withdrawn")  # checked as it is sent
        channel = self._channel(message.channel)
        if channel is None:
            raise PermanentDeliveryError(self.registry.gone(message.channel))
        form = self.forms.forms.get(lead.form)
        # The routing the row was written with: an enquiry's own form's, else the lead's.
        routed_by = self.forms.forms.get(claim.enquiry.form) if claim.enquiry else form
        await channel.deliver(
            Notice(
                message,
                lead,
                claim.enquiry,
                form,
                target_disabled=claim.target_disabled,
                routing=routed_by.routing if routed_by else NO_ROUTING,
                handovers=self.handovers,
            )
        )

    async def _send_digest(self, claim: Claimed) -> None:
        channel = self._channel(claim.message.channel)
        if channel is None:
            raise PermanentDeliveryError(self.registry.gone(claim.message.channel))
        if not isinstance(channel, EmailChannel) or claim.digest is None:
            raise PermanentDeliveryError("a digest is sent by email only")
        await channel.deliver_digest(claim.message, claim.digest)

    def _channel(self, name: str) -> NotificationChannel | None:
        try:
            return self.channels.get(Channel(name))
        except ValueError:  # a name no release of leads knows
            return None

    def _failed(
        self, message: OutboxMessage, error: str, retry_after: float | None
    ) -> tuple[str, Outcome]:
        at = self.retry.next_attempt(
            attempts=message.attempts,
            now=self.clock(),
            scheduled_from=message.scheduled_from,
            retry_after=retry_after,
        )
        if at is None:
            log.warning(
                "notification %s: giving up after %d attempts", message.id, message.attempts
            )
            return DEAD, self._dead(message, f"gave up after {message.attempts} attempts: {error}")
        log.info("notification %s: %s; next attempt at %s", message.id, error, at.isoformat())
        self.metrics.delivery(message.channel, DeliveryOutcome.RETRY)
        return RETRY, outcomes.Retry(message.id, at, error)

    def _delivered(self, message: OutboxMessage) -> Outcome:
        self.metrics.delivery(message.channel, DeliveryOutcome.DELIVERED)
        return outcomes.Delivered(message.id)

    def _held(self, message: OutboxMessage, until: datetime) -> Outcome:
        """Quiet hours: put off until they end, the attempt given back (no metric: nothing
        was tried)."""
        log.info("notification %s: held for quiet hours until %s", message.id, until.isoformat())
        return outcomes.Held(message.id, until, message.scheduled_from)

    def _dead(self, message: OutboxMessage, error: str, *, gone: bool = False) -> Outcome:
        self.metrics.delivery(message.channel, DeliveryOutcome.DEAD)
        return outcomes.Dead(message.id, error, message.target if gone and message.target else None)
