"""Signed webhooks, per the Standard Webhooks specification (``standardwebhooks``).

Each attempt is signed afresh with the current time (receivers reject stale timestamps),
while ``webhook-id`` stays the outbox message id across retries so receivers can drop
repeats. Redirects are not followed: configure the final URL.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from standardwebhooks import Webhook

from leads import __version__
from leads.core.routing import FormRouting
from leads.core.vocabulary import Channel
from leads.errors import EndpointGone, PermanentDeliveryError, TransientDeliveryError
from leads.notify.channels.base import ChannelEntry, ChannelRegistry, Clock, Notice, Route
from leads.notify.content import iso_utc, webhook_payload
from leads.notify.retry import parse_retry_after
from leads.outbound import HTTPClient
from leads.settings import Settings
from leads.storage.types import utcnow

if TYPE_CHECKING:
    import httpx

NOT_CONFIGURED = "this webhook URL is no longer configured"


class WebhookChannel:
    def __init__(
        self,
        secret: str,
        client: HTTPClient,
        *,
        settings: Settings | None = None,
        clock: Clock = utcnow,
    ):
        self.signer = Webhook(secret)
        self.client = client
        self.settings = settings
        self.clock = clock

    async def deliver(self, notice: Notice) -> None:
        message, settings = notice.message, self.settings
        # Only to a URL its form's leads still go to: one removed from the settings or the
        # forms file since the row was written is not posted to.
        if settings is None or message.target not in webhook_urls_of(notice.routing, settings):
            raise PermanentDeliveryError(NOT_CONFIGURED)
        if notice.target_disabled:
            raise PermanentDeliveryError("webhook switched off after 410 Gone")
        payload = webhook_payload(message, notice.lead, notice.enquiry, notice.form, settings)
        await self.post(message.target, str(message.id), payload)

    async def send_test(self, target: str | None, test_id: uuid.UUID) -> None:
        assert target is not None
        payload = {"type": "test", "timestamp": iso_utc(self.clock()), "data": {}}
        await self.post(target, f"test-{test_id}", payload)

    def signed_request(self, url: str, message_id: str, payload: dict[str, Any]) -> httpx.Request:
        import httpx  # here, not at start: leads/outbound.py

        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        now = self.clock()
        return httpx.Request(
            "POST",
            url,
            content=body.encode(),
            headers={
                "content-type": "application/json",
                "user-agent": f"leads/{__version__}",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self.signer.sign(message_id, now, body),
            },
        )

    async def post(self, url: str, message_id: str, payload: dict[str, Any]) -> None:
        import httpx  # here, not at start: leads/outbound.py

        request = self.signed_request(url, message_id, payload)
        try:
            response = await self.client.send(request, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"webhook: {type(exc).__name__}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 410:
            raise EndpointGone("webhook: HTTP 410 Gone")
        if status in (408, 429) or status >= 500:
            after = parse_retry_after(response.headers.get("retry-after"), now=self.clock())
            raise TransientDeliveryError(f"webhook: HTTP {status}", retry_after=after)
        raise PermanentDeliveryError(f"webhook: HTTP {status}")


def webhook_urls_of(routing: FormRouting, settings: Settings) -> tuple[str, ...]:
    """Where a form's leads are posted: its own webhook_urls, else LEADS_WEBHOOK_URLS."""
    return settings.webhook_urls if routing.webhook_urls is None else routing.webhook_urls


def _routes(channel: Channel, settings: Settings, routing: FormRouting) -> list[Route]:
    if settings.webhook_secret is None:  # nothing to sign with (the settings require it
        return []  # with LEADS_WEBHOOK_URLS; a form's own URLs are refused at start)
    return [Route(channel, url) for url in webhook_urls_of(routing, settings)]


def _build(settings: Settings, http: HTTPClient, clock: Clock) -> WebhookChannel:
    assert settings.webhook_secret is not None  # Settings, or the check of the forms' routes
    return WebhookChannel(
        settings.webhook_secret.get_secret_value(), http, settings=settings, clock=clock
    )


def register(registry: ChannelRegistry) -> None:
    registry.register(
        Channel.WEBHOOK,
        ChannelEntry(
            configured=lambda settings: bool(settings.webhook_urls),
            build=_build,
            routes=_routes,
            reads="webhook_urls",
            needs="LEADS_WEBHOOK_SECRET",
            gone=NOT_CONFIGURED,
        ),
    )
