"""Alerts: telling the admins, through the channels that still work, that notifications
are not getting through.

- **When.** The dispatcher's housekeeping runs :meth:`Alerts.check` at most every
  ``CHECK_SECONDS`` by its clock. An *incident* opens at the first dead letter, or when a
  pending notification was queued more than LEADS_ALERT_AFTER_MINUTES ago; it closes once
  no dead letter is left (each retried or delivered) and nothing pending is that old.
- **Once.** One alert per incident, not per message: opening the incident is inserting the
  next row of ``delivery_incidents`` (:mod:`leads.storage.incidents`), so of several
  servers noticing the same stall exactly one alerts. An alert that cannot be sent is not
  tried again (the log says so); the next incident alerts afresh.
- **Through what.** Every configured channel except those the stuck messages use: by email
  when the webhook fails, by webhook when email does. The log always has it too.
- **To whom.** By email, the active admins (staff accounts with the admin role), or
  LEADS_INBOX when there are none; by webhook, every LEADS_WEBHOOK_URLS address, as an
  ``alert.delivery_stalled`` event.
- **What.** How many are dead or waiting, since when, which channels, and the link to
  ``/staff/deliveries``: counts and times only, never anything about a lead.
"""

from __future__ import annotations

import asyncio
import html
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.vocabulary import Channel, Role
from leads.errors import DeliveryError, StorageUnavailable
from leads.logs import event
from leads.notify.channels.base import Clock, NotificationChannel
from leads.notify.channels.mail import EmailChannel
from leads.notify.channels.webhook import WebhookChannel
from leads.notify.content import Email, iso_utc, local_time
from leads.settings import Settings
from leads.storage.alert_tables import DeliveryIncident
from leads.storage.database import Database
from leads.storage.incidents import claim_incident, close_incident, latest_incident, read_stall
from leads.storage.staff_tables import User

log = logging.getLogger("leads.notify.alerts")

CHECK_SECONDS = 30.0
WEBHOOK_EVENT = "alert.delivery_stalled"


@dataclass(frozen=True, slots=True)
class Alert:
    """What an alert says: an incident's numbers, and where to look."""

    number: int
    dead: int
    waiting: int
    since: datetime
    channels: tuple[str, ...]
    after_minutes: int
    url: str

    @classmethod
    def of(cls, incident: DeliveryIncident, settings: Settings) -> Alert:
        return cls(
            number=incident.number,
            dead=incident.dead,
            waiting=incident.waiting,
            since=incident.since,
            channels=tuple(c for c in incident.channels.split(",") if c),
            after_minutes=settings.alert_after_minutes,
            url=f"{settings.public_url}/staff/deliveries",
        )

    def summary(self) -> str:
        parts = []
        if self.dead:
            parts.append(
                f"{self.dead} {'is a dead letter' if self.dead == 1 else 'are dead letters'}"
            )
        if self.waiting:
            verb = "has" if self.waiting == 1 else "have"
            parts.append(f"{self.waiting} {verb} waited more than {self.after_minutes} minutes")
        return " and ".join(parts) or "notifications are stuck"


def alert_email(alert: Alert, settings: Settings, recipients: tuple[str, ...]) -> Email:
    since = local_time(alert.since, settings.timezone)
    failing = ", ".join(alert.channels) or "unknown"
    lines = [
        "Notifications of new leads are not getting through.",
        "",
        f"Notifications: {alert.summary()}.",
        f"The oldest of them was queued at {since}.",
        f"Failing: {failing}.",
        "",
        f"See them and send them again: {alert.url}",
        "(on the server: leads outbox list, then leads outbox retry --all-dead)",
        "",
        "This is the only alert until every notification is through again.",
    ]
    text = "\n".join(lines) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "leads.invalid"
    return Email(
        sender=settings.mail_from,
        to=recipients,
        subject="leads: notifications are not getting through",
        text=text,
        html=body,
        message_id=f"<incident-{alert.number}-{uuid.uuid4().hex}@{domain}>",
        headers={"X-Leads-Notification-Id": f"incident-{alert.number}"},
    )


def alert_payload(alert: Alert, now: datetime) -> dict[str, Any]:
    return {
        "type": WEBHOOK_EVENT,
        "timestamp": iso_utc(now),
        "data": {
            "incident": alert.number,
            "dead": alert.dead,
            "waiting": alert.waiting,
            "since": iso_utc(alert.since),
            "channels": list(alert.channels),
            "url": alert.url,
        },
    }


async def admin_addresses(*, session: AsyncSession) -> tuple[str, ...]:
    rows = await session.scalars(
        select(User.email)
        .where(col(User.role) == Role.ADMIN, col(User.active).is_(True))
        .order_by(col(User.email))
    )
    return tuple(rows.all())


class Alerts:
    """The dispatcher's watch over the outbox (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        channels: Mapping[Channel, NotificationChannel],
        clock: Clock,
    ):
        self.settings = settings
        self.database = database
        self.channels = channels
        self.clock = clock
        self._next_check: datetime | None = None

    async def check(self) -> None:
        now = self.clock()
        if self._next_check is not None and now < self._next_check:
            return
        self._next_check = now + timedelta(seconds=CHECK_SECONDS)
        try:
            async with self.database.writing() as session:
                # The time once the transaction has begun: another server may have opened
                # an incident while this one waited, by a later clock than ours was then.
                now = self.clock()
                cutoff = now - timedelta(minutes=self.settings.alert_after_minutes)
                latest = await latest_incident(session=session)
                stall = await read_stall(session=session, cutoff=cutoff)
                if latest is not None and latest.closed_at is None:
                    if not stall.stuck and await close_incident(
                        session=session, number=latest.number, now=now
                    ):
                        log.info("delivery incident %d closed: all through", latest.number)
                    return
                if not stall.stuck:
                    return
                incident = await claim_incident(session=session, after=latest, stall=stall, now=now)
                if incident is None:
                    return  # another server opened it, and alerts
                recipients = await admin_addresses(session=session) or self.settings.inbox
        except StorageUnavailable:
            log.warning("alerts: database unavailable; will look again")
            return
        await self.tell(Alert.of(incident, self.settings), recipients, now)

    async def tell(self, alert: Alert, recipients: tuple[str, ...], now: datetime) -> None:
        """Send ``alert`` through every channel but the failing ones; log what worked."""
        told: list[str] = []
        for channel, implementation in self.channels.items():
            if channel == Channel.LOG or channel in alert.channels:
                continue
            if channel == Channel.WEBHOOK and not self.settings.webhook_urls:
                continue  # built for forms' own URLs only: alerts go to the settings' URLs
            try:
                async with asyncio.timeout(self.settings.delivery_timeout_seconds):
                    await self._send(implementation, alert, recipients, now)
            except (DeliveryError, TimeoutError) as exc:
                # Our errors' texts name codes and kinds only (the channels make sure).
                log.error(
                    "delivery incident %d: alert by %s failed: %s", alert.number, channel, exc
                )
                continue
            told.append(channel.value)
        log.error(
            "delivery incident %d: %d dead, %d waiting over %d minutes, since %s; %s "
            "(see /staff/deliveries)",
            alert.number,
            alert.dead,
            alert.waiting,
            alert.after_minutes,
            iso_utc(alert.since),
            f"admins told by {', '.join(told)}" if told else "no other channel to tell",
            extra=event(
                "alert",
                incident=alert.number,
                dead=alert.dead,
                waiting=alert.waiting,
                since=iso_utc(alert.since),
                failing=",".join(alert.channels),
                told=",".join(told),
            ),
        )

    async def _send(
        self,
        implementation: NotificationChannel,
        alert: Alert,
        recipients: tuple[str, ...],
        now: datetime,
    ) -> None:
        if isinstance(implementation, EmailChannel):
            if recipients:
                await implementation.send(alert_email(alert, self.settings, recipients))
        elif isinstance(implementation, WebhookChannel):
            payload = alert_payload(alert, now)
            failed: DeliveryError | None = None
            reached = 0
            for url in self.settings.webhook_urls:  # each URL, whatever the others answer
                try:
                    await implementation.post(url, f"incident-{alert.number}", payload)
                    reached += 1
                except DeliveryError as exc:
                    failed = exc
            if failed is not None and not reached:
                raise failed
        else:
            raise DeliveryError(f"{type(implementation).__name__} cannot carry an alert")
