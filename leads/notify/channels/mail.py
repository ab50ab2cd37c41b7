"""What the email channels (SMTP, the email APIs) share: which email an outbox message is.

Each email channel only says how one :class:`leads.notify.content.Email` is sent
(:meth:`EmailChannel.send`); what it says comes from :mod:`leads.notify.content`.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable

from leads.core.routing import FormRouting
from leads.core.vocabulary import Channel, MessageKind
from leads.errors import PermanentDeliveryError
from leads.notify.autoreply import autoreply_email
from leads.notify.channels.base import Notice, Route, Routes
from leads.notify.content import Email, clinic_email
from leads.notify.digest_content import DigestContent, digest_email
from leads.settings import Settings
from leads.storage.models import OutboxMessage

TEST_EMAIL_TEXT = (
    "This is a test from leads. If you can read it, new leads will reach this inbox.\n"
)


def notify_test_email(settings: Settings, test_id: uuid.UUID) -> Email:
    """`leads notify-test`'s email to the clinic's inbox."""
    return Email(
        sender=settings.mail_from,
        to=settings.inbox,
        subject="leads: test notification",
        text=TEST_EMAIL_TEXT,
        html=f"<p>{TEST_EMAIL_TEXT}</p>",
        message_id=f"<test-{test_id}@leads.invalid>",
        headers={"X-Leads-Notification-Id": f"test-{test_id}"},
    )


def inbox_routes(configured: Callable[[Settings], bool]) -> Routes:
    """An email channel's routes: one clinic email per lead, to its form's own inbox (the
    addresses in the row's ``target``) or, for a form that names none, to LEADS_INBOX (no
    target, so the inbox as it is when the email is sent). None for a form whose inbox is
    empty, or while the settings do not configure the channel."""

    def routes(channel: Channel, settings: Settings, routing: FormRouting) -> list[Route]:
        if not configured(settings) or routing.inbox == ():
            return []
        return [Route(channel, routing.inbox_target)]

    return routes


class EmailChannel(ABC):
    """A channel that sends email: the clinic's notification, or the visitor's autoreply.
    Each email channel says only how an email leaves (``send``)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @abstractmethod
    async def send(self, email: Email) -> None:
        """Hand ``email`` to the server or provider; raise our DeliveryError types."""

    async def deliver(self, notice: Notice) -> None:
        message, lead = notice.message, notice.lead
        if message.kind == MessageKind.AUTOREPLY:
            if lead.email is None:
                raise PermanentDeliveryError("the visitor gave no email address")
            email = autoreply_email(message, lead, notice.form, self.settings)
        else:
            email = clinic_email(message, lead, notice.enquiry, notice.form, self.settings)
        await self.send(email)

    async def deliver_digest(self, message: OutboxMessage, digest: DigestContent) -> None:
        """The daily digest of overdue leads (it belongs to no single lead)."""
        await self.send(digest_email(message, digest, self.settings))

    async def send_test(self, target: str | None, test_id: uuid.UUID) -> None:
        await self.send(notify_test_email(self.settings, test_id))
