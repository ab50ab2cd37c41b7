"""Email through an HTTP API: Postmark, SendGrid or Mailgun (httpx).

Each provider's documented answers are mapped the same way: 2xx delivered; 408, 429 and
5xx retried (honouring Retry-After); any other 4xx (bad key, unverified sender, invalid
recipient...) is a dead letter, since repeating the same request cannot succeed.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from leads.errors import PermanentDeliveryError, TransientDeliveryError
from leads.notify.content import Email
from leads.notify.retry import parse_retry_after
from leads.settings import Settings
from leads.storage.types import utcnow

BASE_URLS = {
    "postmark": "https://api.postmarkapp.com",
    "sendgrid": "https://api.sendgrid.com",
    "mailgun": "https://api.mailgun.net",
}


def _address(value: str) -> dict[str, str]:
    from email.utils import parseaddr

    name, address = parseaddr(value)
    return {"email": address, "name": name} if name else {"email": address}


def build_request(provider: str, email: Email, settings: Settings) -> httpx.Request:
    assert settings.email_api_key is not None
    key = settings.email_api_key.get_secret_value()
    base = (settings.email_api_base_url or BASE_URLS[provider]).rstrip("/")
    if provider == "postmark":
        body: dict[str, Any] = {
            "From": email.sender,
            "To": ", ".join(email.to),
            "Subject": email.subject,
            "TextBody": email.text,
            "HtmlBody": email.html,
            "MessageStream": "outbound",
            "Headers": [
                {"Name": "Message-ID", "Value": email.message_id},
                *({"Name": k, "Value": v} for k, v in email.headers.items()),
            ],
        }
        if email.reply_to:
            body["ReplyTo"] = email.reply_to
        return httpx.Request(
            "POST",
            f"{base}/email",
            json=body,
            headers={"X-Postmark-Server-Token": key, "Accept": "application/json"},
        )
    if provider == "sendgrid":
        body = {
            "personalizations": [{"to": [_address(a) for a in email.to]}],
            "from": _address(email.sender),
            "subject": email.subject,
            "content": [
                {"type": "text/plain", "value": email.text},
                {"type": "text/html", "value": email.html},
            ],
            # The same Message-ID as by SMTP, Postmark and Mailgun (SendGrid allows it).
            "headers": {"Message-ID": email.message_id, **email.headers},
            "custom_args": {"notification_id": email.headers.get("X-Leads-Notification-Id", "")},
        }
        if email.reply_to:
            body["reply_to"] = _address(email.reply_to)
        return httpx.Request(
            "POST", f"{base}/v3/mail/send", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    if provider == "mailgun":
        form: dict[str, str | list[str]] = {
            "from": email.sender,
            "to": list(email.to),
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "h:Message-Id": email.message_id,
            **{f"h:{k}": v for k, v in email.headers.items()},
        }
        if email.reply_to:
            form["h:Reply-To"] = email.reply_to
        token = base64.b64encode(f"api:{key}".encode()).decode()
        return httpx.Request(
            "POST",
            f"{base}/v3/{settings.mailgun_domain}/messages",
            data=form,
            headers={"Authorization": f"Basic {token}"},
        )
    raise ValueError(f"unknown email API {provider!r}")


class EmailAPIChannel:
    name = "email_api"

    def __init__(self, settings: Settings, client: httpx.AsyncClient):
        assert settings.email_api is not None
        self.provider = settings.email_api
        self.settings = settings
        self.client = client

    async def send(self, email: Email) -> None:
        request = build_request(self.provider, email, self.settings)
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"{self.provider}: {type(exc).__name__}") from exc
        check_answer(self.provider, response)


def check_answer(provider: str, response: httpx.Response) -> None:
    status = response.status_code
    if provider == "postmark" and status == 200:
        # Postmark can answer 200 with a non-zero ErrorCode in the body.
        code = _json(response).get("ErrorCode", 0)
        if code:
            raise PermanentDeliveryError(f"postmark ErrorCode {code}")
        return
    if 200 <= status < 300:
        return
    detail = f"{provider}: HTTP {status}"
    if provider == "postmark" and (code := _json(response).get("ErrorCode")):
        detail += f" ErrorCode {code}"
    if status in (408, 429) or status >= 500:
        after = parse_retry_after(response.headers.get("retry-after"), now=utcnow())
        raise TransientDeliveryError(detail, retry_after=after)
    raise PermanentDeliveryError(detail)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
