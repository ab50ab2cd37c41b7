"""Email through an HTTP API: Postmark, SendGrid or Mailgun (httpx).

Each provider's documented answers are mapped the same way: 2xx delivered; 408, 429 and
5xx retried (honouring Retry-After); any other 4xx (bad key, unverified sender, invalid
recipient...) is a dead letter, since repeating the same request cannot succeed.

Each provider writes the email's headers itself from the fields it gets, so those fields are
made safe here first (:func:`build_request`).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any

from leads.core.vocabulary import Channel
from leads.errors import PermanentDeliveryError, TransientDeliveryError
from leads.notify.channels.base import ChannelEntry, ChannelRegistry, Clock
from leads.notify.channels.mail import EmailChannel, inbox_routes
from leads.notify.content import Email
from leads.notify.mime import clean_header_text, mailbox, one_line_mailbox, one_line_text
from leads.notify.retry import parse_retry_after
from leads.outbound import HTTPClient
from leads.settings import Settings

if TYPE_CHECKING:
    import httpx

BASE_URLS = {
    "postmark": "https://api.postmarkapp.com",
    "sendgrid": "https://api.sendgrid.com",
    "mailgun": "https://api.mailgun.net",
}


def _address(value: str, *, utf8: bool = False) -> dict[str, str]:
    name, address = mailbox(value, utf8=utf8)
    name = one_line_text(name)
    return {"email": address, "name": name} if name else {"email": address}


def _reply_to(email: Email) -> str | None:
    """The Reply-To, if it can be written in ASCII; otherwise none (the clinic's email shows
    the visitor's address in its body), since we cannot know how the provider would write
    a non-ASCII one."""
    if not email.reply_to:
        return None
    try:
        mailbox(email.reply_to, utf8=False)
    except PermanentDeliveryError:
        return None
    return email.reply_to


def build_request(provider: str, email: Email, settings: Settings) -> httpx.Request:
    """The provider's request. Every header-bound field is one clean line (see
    :func:`leads.notify.mime.one_line_text`); addresses have their domain in ASCII. A
    recipient with a non-ASCII local part is passed on as it is: the provider delivers it
    or refuses it (a dead letter)."""
    import httpx  # here, not at start: leads/outbound.py

    assert settings.email_api_key is not None
    key = settings.email_api_key.get_secret_value()
    base = (settings.email_api_base_url or BASE_URLS[provider]).rstrip("/")
    sender = one_line_mailbox(email.sender, utf8=False)
    to = [one_line_mailbox(a, utf8=True) for a in email.to]
    subject = one_line_text(email.subject)
    reply_to = _reply_to(email)
    headers = {
        "Message-ID": clean_header_text(email.message_id),
        **{k: clean_header_text(v) for k, v in email.headers.items()},
    }
    if provider == "postmark":
        body: dict[str, Any] = {
            "From": sender,
            "To": ", ".join(to),
            "Subject": subject,
            "TextBody": email.text,
            "HtmlBody": email.html,
            "MessageStream": "outbound",
            "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
        }
        if reply_to:
            body["ReplyTo"] = one_line_mailbox(reply_to, utf8=False)
        return httpx.Request(
            "POST",
            f"{base}/email",
            json=body,
            headers={"X-Postmark-Server-Token": key, "Accept": "application/json"},
        )
    if provider == "sendgrid":
        body = {
            "personalizations": [{"to": [_address(a, utf8=True) for a in email.to]}],
            "from": _address(email.sender),
            "subject": subject,
            "content": [
                {"type": "text/plain", "value": email.text},
                {"type": "text/html", "value": email.html},
            ],
            # The same Message-ID as by SMTP, Postmark and Mailgun (SendGrid allows it).
            "headers": headers,
            "custom_args": {"notification_id": headers.get("X-Leads-Notification-Id", "")},
        }
        if reply_to:
            body["reply_to"] = _address(reply_to)
        return httpx.Request(
            "POST", f"{base}/v3/mail/send", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    if provider == "mailgun":
        form: dict[str, str | list[str]] = {
            "from": sender,
            "to": to,
            "subject": subject,
            "text": email.text,
            "html": email.html,
            "h:Message-Id": headers.pop("Message-ID"),
            **{f"h:{k}": v for k, v in headers.items()},
        }
        if reply_to:
            form["h:Reply-To"] = one_line_mailbox(reply_to, utf8=False)
        token = base64.b64encode(f"api:{key}".encode()).decode()
        return httpx.Request(
            "POST",
            f"{base}/v3/{settings.mailgun_domain}/messages",
            data=form,
            headers={"Authorization": f"Basic {token}"},
        )
    raise ValueError(f"unknown email API {provider!r}")


class EmailAPIChannel(EmailChannel):
    def __init__(self, settings: Settings, client: HTTPClient, clock: Clock):
        super().__init__(settings)
        assert settings.email_api is not None
        self.provider = settings.email_api
        self.client = client
        self.clock = clock

    async def send(self, email: Email) -> None:
        import httpx  # here, not at start: leads/outbound.py

        request = build_request(self.provider, email, self.settings)
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as exc:
            raise TransientDeliveryError(f"{self.provider}: {type(exc).__name__}") from exc
        check_answer(self.provider, response, now=self.clock())


def check_answer(provider: str, response: httpx.Response, *, now: datetime) -> None:
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
        after = parse_retry_after(response.headers.get("retry-after"), now=now)
        raise TransientDeliveryError(detail, retry_after=after)
    raise PermanentDeliveryError(detail)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _configured(settings: Settings) -> bool:
    return settings.email_api is not None


def register(registry: ChannelRegistry) -> None:
    registry.register(
        Channel.EMAIL_API,
        ChannelEntry(
            configured=_configured,
            build=EmailAPIChannel,
            routes=inbox_routes(_configured),
            reads="inbox",
            needs="LEADS_EMAIL_API",
            carries_autoreply=True,
        ),
    )
