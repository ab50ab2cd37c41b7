"""Signed webhooks, per the Standard Webhooks specification (``standardwebhooks``).

Each attempt is signed afresh with the current time (receivers reject stale timestamps),
while ``webhook-id`` stays the outbox message id across retries so receivers can drop
repeats. Redirects are not followed: configure the final URL.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from standardwebhooks import Webhook

from leads import __version__
from leads.errors import EndpointGone, PermanentDeliveryError, TransientDeliveryError
from leads.notify.retry import parse_retry_after
from leads.storage.types import utcnow


class WebhookChannel:
    name = "webhook"

    def __init__(self, secret: str, client: httpx.AsyncClient):
        self.signer = Webhook(secret)
        self.client = client

    def signed_request(self, url: str, message_id: str, payload: dict[str, Any]) -> httpx.Request:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        now = utcnow()
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
            after = parse_retry_after(response.headers.get("retry-after"), now=utcnow())
            raise TransientDeliveryError(f"webhook: HTTP {status}", retry_after=after)
        raise PermanentDeliveryError(f"webhook: HTTP {status}")
