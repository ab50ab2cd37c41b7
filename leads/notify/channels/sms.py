"""Texts to the front desk: one outbox row per number (the number in its ``target``): the
form's own ``sms_to``, else LEADS_SMS_TO; sent through Twilio or Vonage
(:mod:`.sms_providers`) on the shared client.

At most one text per row, though providers take no idempotency key:

1. a row the provider accepted (``provider_message_id``) is never sent again;
2. just before the request leaves, the row is marked handed over, in a committed write
   (:class:`leads.notify.channels.base.HandOvers`); an answer that says nothing was sent
   (an error answer, a connection never made) takes the mark back;
3. a row still marked when it is tried again had its answer lost (a timeout, a crash).
   With Twilio, its messages to that number are looked up, and the one with this text
   (unique per lead: its link) created since the mark counts as accepted; found nothing,
   it is sent. Vonage has
   no look-up: the row is a dead letter that says why (:data:`MAY_HAVE_SENT`).

Logs and dead letters name the outbox id, the provider and its code: never a number, a
name or a token.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from leads.core.routing import FormRouting
from leads.core.vocabulary import Channel
from leads.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from leads.notify.channels.base import ChannelEntry, ChannelRegistry, Clock, Notice, Route
from leads.notify.channels.sms_providers import Answer, Twilio, provider_for
from leads.notify.content import lead_url
from leads.notify.sms_text import lead_text
from leads.outbound import HTTPClient
from leads.settings import Settings

NOT_CONFIGURED = "this number is no longer configured"
MAY_HAVE_SENT = (
    "the answer to the first try was lost: the provider may have sent it; "
    "not sent again so nobody gets two texts"
)


class SmsChannel:
    def __init__(self, settings: Settings, client: HTTPClient, clock: Clock):
        self.settings = settings
        self.client = client
        self.clock = clock
        self.provider = provider_for(settings)

    async def deliver(self, notice: Notice) -> None:
        import httpx  # here, not at start: leads/outbound.py

        message, settings = notice.message, self.settings
        to = message.target
        if to is None or to not in numbers_of(notice.routing, settings):
            raise PermanentDeliveryError(NOT_CONFIGURED)
        if message.provider_message_id:
            return  # accepted by an earlier attempt whose outcome was not recorded
        handovers = notice.handovers
        if handovers is None:
            raise PermanentDeliveryError("texts are sent by a dispatcher only")
        text = lead_text(
            notice.lead,
            notice.form,
            link=lead_url(notice.lead, settings),
            with_phone=settings.sms_detail == "contact",
        )
        if message.handed_over_at is not None:
            if not self.provider.can_look_up:
                raise PermanentDeliveryError(MAY_HAVE_SENT)
            found = await self._look_up(to, text, since=message.handed_over_at)
            if found is not None:
                await handovers.accepted(message, found.provider_id or "unknown")
                return
        if not await handovers.handing_over(message):
            raise TransientDeliveryError(f"{self.provider.name}: handed over by another attempt")
        try:
            answer = await self._send(to, text)
        except httpx.ConnectError as exc:  # no connection: nothing left here
            await handovers.not_sent(message)
            raise TransientDeliveryError(f"{self.provider.name}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:  # it may have arrived: the mark stays
            raise TransientDeliveryError(f"{self.provider.name}: {type(exc).__name__}") from exc
        if answer.accepted:
            await handovers.accepted(message, answer.provider_id or "unknown")
            return
        await handovers.not_sent(message)
        raise self._failure(answer)

    async def send_test(self, target: str | None, test_id: uuid.UUID) -> str:
        """`leads notify-test`: a test text to ``target``; the provider's id and status, or
        a failure with its code and the provider's words (numbers masked)."""
        import httpx  # here, not at start: leads/outbound.py

        assert target is not None
        text = f"leads: a test text from {self.settings.public_url} ({str(test_id)[:8]})."
        try:
            answer = await self._send(target, text)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"{self.provider.name}: {type(exc).__name__}") from exc
        if not answer.accepted:
            failure = self._failure(answer)
            words = f": {answer.message}" if answer.message else ""
            raise type(failure)(f"{failure}{words}")
        return f"accepted as {answer.provider_id}, status {answer.status}"

    async def _send(self, to: str, text: str) -> Answer:
        """POST the text and read the answer (transport errors are the caller's)."""
        response = await self.client.send(
            self.provider.send_request(to, text), follow_redirects=False
        )
        return self.provider.read_send(response, self.clock())

    async def _look_up(self, to: str, text: str, *, since: datetime) -> Answer | None:
        import httpx  # here, not at start: leads/outbound.py

        provider = self.provider
        assert isinstance(provider, Twilio)  # the one that can look up
        try:
            response = await self.client.send(provider.look_up_request(to), follow_redirects=False)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"twilio look-up: {type(exc).__name__}") from exc
        found = provider.read_look_up(response, text, self.clock(), since)
        if found is not None and not found.accepted:
            raise TransientDeliveryError(
                f"look-up {found.summary('twilio')}", retry_after=found.retry_after
            )
        return found

    def _failure(self, answer: Answer) -> DeliveryError:
        summary = answer.summary(self.provider.name)
        if answer.retry:
            return TransientDeliveryError(summary, retry_after=answer.retry_after)
        return PermanentDeliveryError(summary)


def numbers_of(routing: FormRouting, settings: Settings) -> tuple[str, ...]:
    """Who gets a form's texts: its own sms_to, else LEADS_SMS_TO."""
    return settings.sms_to if routing.sms_to is None else routing.sms_to


def _routes(channel: Channel, settings: Settings, routing: FormRouting) -> list[Route]:
    if settings.sms_provider is None:  # nothing to send with (a form's own numbers are
        return []  # refused at start then)
    return [Route(channel, number) for number in numbers_of(routing, settings)]


def register(registry: ChannelRegistry) -> None:
    registry.register(
        Channel.SMS,
        ChannelEntry(
            configured=lambda settings: settings.sms_provider is not None,
            build=SmsChannel,
            routes=_routes,
            reads="sms_to",
            needs="LEADS_SMS_PROVIDER",
            gone=NOT_CONFIGURED,
        ),
    )
