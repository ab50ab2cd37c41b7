"""The SMS providers' requests and answers: Twilio's Messages API and Vonage's SMS API.

Each request is built and each answer read here, as the provider documents them; what an
answer means (accepted; retry, honouring Retry-After; dead letter) is an :class:`Answer`.

- Twilio: a form-encoded POST to ``/2010-04-01/Accounts/{AccountSid}/Messages.json`` with
  Basic auth (the Account SID and Auth Token), ``To``, ``Body``, and ``From`` (or
  ``MessagingServiceSid`` for an ``MG...`` sender). 2xx: accepted (its ``sid``). HTTP 429,
  error code 20429 and 5xx: retried. Any other 4xx (21211 invalid number, 21610 the
  recipient replied STOP, 21608 an unverified number on a trial account...): dead.
  Its messages can be listed (``GET Messages.json?To=&From=``, newest first), which is how
  a text whose answer was lost is found again (:meth:`Twilio.look_up`).
- Vonage: a JSON POST to ``/sms/json`` with ``api_key``, ``api_secret``, ``from``, ``to``,
  ``text``; it answers 200 with ``messages[].status``: ``0`` accepted, ``1`` (throttled)
  and ``5`` (internal error) retried, any other (2, 3, 4, 7, 15...) dead. HTTP 429 and 5xx
  are retried too. It has no look-up.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from leads.notify.retry import parse_retry_after
from leads.settings import Settings
from leads.settings.display import masked_number
from leads.settings.sms import MESSAGING_SERVICE

if TYPE_CHECKING:
    import httpx

BASE_URLS = {"twilio": "https://api.twilio.com", "vonage": "https://rest.nexmo.com"}

# Plain words for the codes staff are most likely to meet (the dead letter says them).
TWILIO_REASONS = {
    "20003": "the account SID or auth token is wrong",
    "20429": "too many requests",
    "21211": "the number is not a valid phone number",
    "21408": "texts to this country are not enabled on the account",
    "21608": "a trial account can only text verified numbers",
    "21610": "the recipient has replied STOP to this sender",
    "21614": "the number cannot receive texts",
}
VONAGE_REASONS = {
    "1": "throttled",
    "2": "a parameter is missing",
    "3": "a parameter is invalid",
    "4": "the API key or secret is wrong",
    "5": "an internal error at the provider",
    "6": "the message was refused",
    "7": "the number is barred",
    "9": "the account's quota is used up",
    "15": "the sender address is not allowed",
}
VONAGE_RETRIED = {"1", "5"}

CLOCK_MARGIN = timedelta(minutes=10)  # between our clock and the provider's

NUMBER_LIKE = re.compile(r"\+?\d[\d ()\-]{4,}\d")


def mask_numbers(text: str) -> str:
    """Provider text with every phone-number-like run masked but its last 3 digits."""

    def mask(match: re.Match[str]) -> str:
        found = match.group(0)
        return masked_number(found[0].replace("+", "*") + re.sub(r"\D", "", found[1:]))

    return NUMBER_LIKE.sub(mask, text)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one answer meant. ``message`` is the provider's own words (numbers masked):
    shown by `leads notify-test`, never logged."""

    accepted: bool
    provider_id: str | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None
    retry: bool = False
    retry_after: float | None = None
    http_status: int = 200

    def summary(self, provider: str) -> str:
        """The failure in words safe for logs and dead letters: provider, status, code."""
        parts = [f"{provider}: HTTP {self.http_status}"]
        if self.code:
            reasons = TWILIO_REASONS if provider == "twilio" else VONAGE_REASONS
            label = "code" if provider == "twilio" else "status"
            reason = reasons.get(self.code)
            parts.append(f"{label} {self.code}" + (f" ({reason})" if reason else ""))
        return " ".join(parts)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _http_failure(response: httpx.Response, now: datetime, code: str | None, text: str) -> Answer:
    status = response.status_code
    retry = status in (408, 429) or status >= 500 or code == "20429"
    after = parse_retry_after(response.headers.get("retry-after"), now=now) if retry else None
    return Answer(
        accepted=False,
        code=code,
        message=mask_numbers(text)[:300] if text else None,
        retry=retry,
        retry_after=after,
        http_status=status,
    )


class Twilio:
    name = "twilio"
    can_look_up = True

    def __init__(self, settings: Settings):
        assert settings.sms_account is not None  # the settings require all three
        assert settings.sms_token is not None
        assert settings.sms_from is not None
        self.account = settings.sms_account
        self.sender = settings.sms_from
        base = (settings.sms_base_url or BASE_URLS["twilio"]).rstrip("/")
        self.url = f"{base}/2010-04-01/Accounts/{self.account}/Messages.json"
        pair = f"{self.account}:{settings.sms_token.get_secret_value()}"
        self.auth = f"Basic {base64.b64encode(pair.encode()).decode()}"

    def _sender(self) -> dict[str, str]:
        if MESSAGING_SERVICE.fullmatch(self.sender):
            return {"MessagingServiceSid": self.sender}
        return {"From": self.sender}

    def send_request(self, to: str, text: str) -> httpx.Request:
        import httpx  # here, not at start: leads/outbound.py

        form = {"To": to, **self._sender(), "Body": text}
        return httpx.Request("POST", self.url, data=form, headers={"Authorization": self.auth})

    def read_send(self, response: httpx.Response, now: datetime) -> Answer:
        body = _json(response)
        if 200 <= response.status_code < 300:
            return Answer(
                accepted=True,
                provider_id=str(body.get("sid") or "unknown"),
                status=str(body.get("status") or "accepted"),
                http_status=response.status_code,
            )
        code = str(body["code"]) if body.get("code") is not None else None
        return _http_failure(response, now, code, str(body.get("message") or ""))

    def look_up_request(self, to: str) -> httpx.Request:
        """The newest messages to ``to`` from our sender. No ``DateSent`` filter: a
        message still queued at Twilio has no send date yet, and must be found too."""
        import httpx  # here, not at start: leads/outbound.py

        params = {"To": to, "PageSize": "50"}
        if "From" in self._sender():
            params["From"] = self.sender
        return httpx.Request("GET", self.url, params=params, headers={"Authorization": self.auth})

    def read_look_up(
        self, response: httpx.Response, text: str, now: datetime, since: datetime
    ) -> Answer | None:
        """The message with exactly this text (unique per lead: its link) created since
        ``since`` (less a margin for the clocks: a follow-up enquiry's text reads like the
        lead's first), as accepted; None if there is none; a failed answer if the list
        could not be read."""
        body = _json(response)
        if not 200 <= response.status_code < 300:
            code = str(body["code"]) if body.get("code") is not None else None
            failed = _http_failure(response, now, code, str(body.get("message") or ""))
            return replace(failed, retry=True)  # look again later
        for message in body.get("messages") or []:
            if not isinstance(message, dict) or message.get("body") != text:
                continue
            created = _rfc2822(message.get("date_created"))
            if created is None or created >= since - CLOCK_MARGIN:
                return Answer(
                    accepted=True,
                    provider_id=str(message.get("sid") or "unknown"),
                    status=str(message.get("status") or ""),
                )
        return None


def _rfc2822(value: object) -> datetime | None:
    """Twilio's ``date_created`` (``Tue, 26 Jul 2016 12:50:07 +0000``), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


class Vonage:
    name = "vonage"
    can_look_up = False

    def __init__(self, settings: Settings):
        assert settings.sms_account is not None  # the settings require all three
        assert settings.sms_token is not None
        assert settings.sms_from is not None
        self.key = settings.sms_account
        self.secret = settings.sms_token.get_secret_value()
        # Numbers without the +, as Vonage writes them; an alphanumeric sender as it is.
        self.sender = settings.sms_from.removeprefix("+")
        self.url = f"{(settings.sms_base_url or BASE_URLS['vonage']).rstrip('/')}/sms/json"

    def send_request(self, to: str, text: str) -> httpx.Request:
        import httpx  # here, not at start: leads/outbound.py

        body = {
            "api_key": self.key,
            "api_secret": self.secret,
            "from": self.sender,
            "to": to.removeprefix("+"),
            "text": text,
        }
        return httpx.Request("POST", self.url, json=body)

    def read_send(self, response: httpx.Response, now: datetime) -> Answer:
        if response.status_code != 200:
            return _http_failure(response, now, None, response.text[:300])
        messages = _json(response).get("messages") or [{}]
        first = messages[0] if isinstance(messages[0], dict) else {}
        status = str(first.get("status", ""))
        if status == "0":
            return Answer(
                accepted=True, provider_id=str(first.get("message-id") or "unknown"), status="0"
            )
        text = str(first.get("error-text") or "")
        return Answer(
            accepted=False,
            code=status or "?",
            message=mask_numbers(text)[:300] if text else None,
            retry=status in VONAGE_RETRIED,
        )


Provider = Twilio | Vonage


def provider_for(settings: Settings) -> Provider:
    return Twilio(settings) if settings.sms_provider == "twilio" else Vonage(settings)
