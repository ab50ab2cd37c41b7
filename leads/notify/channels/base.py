"""The one interface every channel implements, and the registry that names them.

A *channel* carries one outbox message out (:class:`NotificationChannel`); a registry entry
(:class:`ChannelEntry`) says what the settings mean for it: whether they configure it, where
a new lead's messages go (its routes, for the lead's form: a form may name its own
recipients, :class:`leads.core.routing.FormRouting`), whether it can carry the visitor's
autoreply, how to check its settings at start and how to build it. The registry is keyed by
:class:`leads.core.vocabulary.Channel`, the value stored in the outbox row's ``channel``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from leads.core.forms import Form
from leads.core.routing import NO_ROUTING, FormRouting
from leads.core.vocabulary import Channel
from leads.errors import ConfigurationError
from leads.outbound import HTTPClient, Outbound
from leads.settings import Settings
from leads.storage.models import Enquiry, Lead, OutboxMessage

if TYPE_CHECKING:
    import httpx

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Route:
    """One place a new lead's notification goes: a channel, and for some a target (a
    webhook's URL, a number to text, a form's own inbox written with commas)."""

    channel: Channel
    target: str | None = None


class HandOvers(Protocol):
    """For a channel whose provider takes no idempotency key (texts): committed marks on
    the outbox row, so a retry never sends what an attempt may have sent
    (:mod:`leads.notify.handovers`)."""

    async def handing_over(self, message: OutboxMessage) -> bool:
        """Mark the row just before the request leaves; False: send nothing."""
        ...

    async def not_sent(self, message: OutboxMessage) -> None:
        """The provider said it sent nothing: take the mark back."""
        ...

    async def accepted(self, message: OutboxMessage, provider_id: str) -> None:
        """The provider accepted it as ``provider_id``: never send it again."""
        ...


@dataclass(frozen=True, slots=True)
class Notice:
    """One claimed outbox message with what it announces: what a channel delivers."""

    message: OutboxMessage
    lead: Lead
    enquiry: Enquiry | None
    form: Form | None
    target_disabled: bool = False  # its target answered 410 Gone (see disabled_webhooks)
    # The routing of the form it was written for (an enquiry's own form, else the lead's):
    # what its target must still be among when it is sent.
    routing: FormRouting = NO_ROUTING
    handovers: HandOvers | None = None  # the outbox's marks, for texts


class NotificationChannel(Protocol):
    """A way out. Each method raises only :class:`leads.errors.DeliveryError` types:
    third-party errors are translated in the channel's module, so the retry policy decides
    on one vocabulary. A channel that keeps connections of its own (SMTP's sessions) also
    has ``aclose`` (:class:`ClosingChannel`), called once it will send no more."""

    async def deliver(self, notice: Notice) -> None:
        """Deliver one outbox message (its content comes from :mod:`leads.notify.content`)."""

    async def send_test(self, target: str | None, test_id: uuid.UUID) -> str | None:
        """Send `leads notify-test`'s message to ``target`` (the route's), now; what the
        provider answered, where it says more than "delivered" (a text's id)."""


@runtime_checkable
class ClosingChannel(Protocol):
    async def aclose(self) -> None:
        """Close what the channel keeps open (politely: SMTP says QUIT)."""


async def close_channels(channels: Iterable[NotificationChannel]) -> None:
    """Close every channel that keeps something open."""
    for channel in channels:
        if isinstance(channel, ClosingChannel):
            await channel.aclose()


def http_client(timeout: float, *, transport: httpx.AsyncBaseTransport | None = None) -> Outbound:
    """The one HTTP client of a process's deliveries (webhooks, email APIs, texts) and checks
    (captchas), made at its first request (:mod:`leads.outbound`)."""
    return Outbound(timeout, transport=transport)


Build = Callable[[Settings, HTTPClient, Clock], NotificationChannel]
Routes = Callable[[Channel, Settings, FormRouting], list[Route]]


def one_route(channel: Channel, settings: Settings, routing: FormRouting) -> list[Route]:
    return [Route(channel)]


def nothing_to_check(settings: Settings) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ChannelEntry:
    """What the registry knows about one channel.

    - ``configured``: whether these settings ask for it;
    - ``build``: the channel, from the settings, the shared HTTP client and a clock;
    - ``check``: raise :class:`leads.errors.ConfigurationError` (one line naming the
      setting) if its settings cannot work; run at start by `leads serve` and `leads check`;
    - ``routes``: a new lead's routes through it, for the lead's form's routing (one, or
      one per target; none when it carries nothing for that form, which includes when
      the settings do not let it send). Called inside the intake's transaction for every
      submission: no I/O, nothing slow;
    - ``reads``: the :class:`FormRouting` key it sends to (``inbox``, ``webhook_urls``,
      ``sms_to``), if any: a form naming recipients of that kind needs one such channel
      able to send, or the forms file is refused at start;
    - ``needs``: the setting that lets it send, as that refusal names it;
    - ``carries_autoreply``: it is an email channel, so it can send the visitor's autoreply;
    - ``fallback``: used only when no other channel is configured (the log), and for a
      form whose routing leaves no other route;
    - ``gone``: the dead letter's reason for its messages once the settings no longer
      configure it.
    """

    configured: Callable[[Settings], bool]
    build: Build
    check: Callable[[Settings], object] = nothing_to_check
    routes: Routes = one_route
    reads: str | None = None
    needs: str = ""
    carries_autoreply: bool = False
    fallback: bool = False
    gone: str | None = None


@dataclass(slots=True)
class ChannelRegistry:
    """The channels, in the order they are registered: the order of a lead's outbox rows,
    and of preference for the autoreply."""

    _entries: dict[Channel, ChannelEntry] = field(default_factory=dict)

    def register(self, channel: Channel, entry: ChannelEntry) -> None:
        if channel in self._entries:
            raise ValueError(f"channel {channel} is registered already")
        self._entries[channel] = entry

    def configured(self, settings: Settings) -> list[Channel]:
        """The channels these settings ask for, not counting a fallback."""
        return [
            channel
            for channel, entry in self._entries.items()
            if not entry.fallback and entry.configured(settings)
        ]

    def routes_for(self, settings: Settings, routing: FormRouting) -> list[Route]:
        """Where a new lead's notifications go, for its form's ``routing`` (NO_ROUTING: the
        settings' recipients); the fallback (the log) when that leaves nothing."""
        routes = [
            route
            for channel, entry in self._entries.items()
            if not entry.fallback
            for route in entry.routes(channel, settings, routing)
        ]
        return routes or [
            route
            for channel, entry in self._entries.items()
            if entry.fallback
            for route in entry.routes(channel, settings, routing)
        ]

    def readers(self, key: str) -> list[Channel]:
        """The channels that send to a :class:`FormRouting` key's recipients."""
        return [channel for channel, entry in self._entries.items() if entry.reads == key]

    def autoreply_route(self, settings: Settings) -> Route | None:
        """The first configured channel that carries email, if any."""
        for channel in self.configured(settings):
            if self._entries[channel].carries_autoreply:
                return Route(channel)
        return None

    def email_routes(self, settings: Settings) -> list[Route]:
        """The configured channels that carry email (where the daily digest goes)."""
        return [
            Route(channel)
            for channel in self.configured(settings)
            if self._entries[channel].carries_autoreply
        ]

    def check(self, settings: Settings, forms: Iterable[Form] = ()) -> None:
        """Raise :class:`ConfigurationError` (one line) for a channel whose settings cannot
        work, or a form naming recipients no configured channel sends to."""
        forms = list(forms)
        for form in forms:
            used = {route.channel for route in self.routes_for(settings, form.routing)}
            for key in form.routing.named():
                readers = self.readers(key)
                if used.isdisjoint(readers):
                    needs = " or ".join(n for c in readers if (n := self._entries[c].needs))
                    fix = f"set {needs}" if needs else "no channel sends to it"
                    raise ConfigurationError(
                        f"LEADS_FORMS_FILE: form {form.slug!r}: {key} is set, but nothing "
                        f"sends to it: {fix}"
                    )
        for channel in self.in_use(settings, [form.routing for form in forms]):
            self._entries[channel].check(settings)

    def in_use(self, settings: Settings, routings: Iterable[FormRouting] = ()) -> list[Channel]:
        """The channels these settings configure, and those some form's routing uses."""
        routed = {route.channel for r in routings for route in self.routes_for(settings, r)}
        return [
            channel
            for channel, entry in self._entries.items()
            if not entry.fallback and (channel in routed or entry.configured(settings))
        ]

    def build(
        self,
        settings: Settings,
        http: HTTPClient,
        clock: Clock,
        routings: Iterable[FormRouting] = (),
    ) -> dict[Channel, NotificationChannel]:
        """Every channel that can deliver with these settings and forms' ``routings``: the
        configured ones, those a form routes through, and the fallback (which delivers what
        was written while nothing was configured)."""
        used = set(self.in_use(settings, routings))
        return {
            channel: entry.build(settings, http, clock)
            for channel, entry in self._entries.items()
            if entry.fallback or channel in used
        }

    def gone(self, channel: str) -> str:
        """Why a message for a channel that is not built cannot be delivered."""
        try:
            gone = self._entries[Channel(channel)].gone
        except (ValueError, KeyError):
            gone = None
        return gone or f"channel {channel} is no longer configured"


ChannelsOverride = Mapping[Channel, NotificationChannel]
