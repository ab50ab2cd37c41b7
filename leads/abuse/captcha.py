"""Optional captcha (``LEADS_CAPTCHA_PROVIDER``): Cloudflare Turnstile, hCaptcha or
reCAPTCHA v3, checked server-side through the provider's ``siteverify`` endpoint.

    verifier = CaptchaVerifier("turnstile", secret, min_score=0.5, timeout=5,
                               fail_open=True, client=http_client)
    reason = await verifier.verify(form_data.get(PROVIDERS["turnstile"].response_field), ip)

``verify`` answers ``None`` (human enough) or one reason to flag the lead as spam:

    captcha_missing      the form carried no captcha answer
    captcha_failed       the provider says the answer is invalid, expired or reused
                         (or, with ``expected_action``, was made for another action)
    captcha_low_score    reCAPTCHA v3 score below ``min_score``; hCaptcha Enterprise risk
                         score above ``1 - min_score`` (hCaptcha's score grows with risk)
    captcha_unavailable  the provider could not be asked (timeout, network, HTTP error,
                         unreadable answer, or it rejects *our* secret or request); only
                         when fail-closed. Fail-open answers ``None`` and logs a warning.

The request is form-encoded ``secret``, ``response`` and (when known) ``remoteip``; the
answer is JSON ``{"success": bool, "error-codes": [...], "score": float, "action",
"hostname", "challenge_ts"}``. Errors that mean our configuration is wrong (a bad secret)
are treated as "unavailable", not as the visitor's fault, and logged as errors.

For the page template, ``PROVIDERS[provider]`` gives the widget's script URL
(``script_url(site_key)``; reCAPTCHA v3 needs the site key in it), the form field the
widget fills in (``response_field``), and the Content-Security-Policy sources it needs
(``csp``: directive -> sources), as each provider documents them:

- Turnstile: script ``https://challenges.cloudflare.com/turnstile/v0/api.js``, field
  ``cf-turnstile-response``; CSP script-src and frame-src ``https://challenges.cloudflare.com``.
- hCaptcha: script ``https://js.hcaptcha.com/1/api.js``, field ``h-captcha-response``; CSP
  script-src, frame-src, style-src and connect-src ``https://hcaptcha.com
  https://*.hcaptcha.com``.
- reCAPTCHA v3: script ``https://www.google.com/recaptcha/api.js?render=SITE_KEY``; v3 has
  no widget field of its own: the page calls ``grecaptcha.execute(site_key, {action})`` and
  puts the token in a hidden ``g-recaptcha-response`` input. CSP script-src
  ``https://www.google.com/recaptcha/ https://www.gstatic.com/recaptcha/``, frame-src
  ``https://www.google.com/recaptcha/ https://recaptcha.google.com/recaptcha/``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

Provider = Literal["turnstile", "hcaptcha", "recaptcha"]


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    verify_url: str
    script: str
    response_field: str
    csp: Mapping[str, tuple[str, ...]]

    def script_url(self, site_key: str) -> str:
        return self.script.format(site_key=quote(site_key, safe=""))


_HCAPTCHA_HOSTS = ("https://hcaptcha.com", "https://*.hcaptcha.com")
PROVIDERS: Mapping[Provider, ProviderInfo] = {
    "turnstile": ProviderInfo(
        verify_url="https://challenges.cloudflare.com/turnstile/v0/siteverify",
        script="https://challenges.cloudflare.com/turnstile/v0/api.js",
        response_field="cf-turnstile-response",
        csp={
            "script-src": ("https://challenges.cloudflare.com",),
            "frame-src": ("https://challenges.cloudflare.com",),
        },
    ),
    "hcaptcha": ProviderInfo(
        verify_url="https://api.hcaptcha.com/siteverify",
        script="https://js.hcaptcha.com/1/api.js",
        response_field="h-captcha-response",
        csp={
            "script-src": _HCAPTCHA_HOSTS,
            "frame-src": _HCAPTCHA_HOSTS,
            "style-src": _HCAPTCHA_HOSTS,
            "connect-src": _HCAPTCHA_HOSTS,
        },
    ),
    "recaptcha": ProviderInfo(
        verify_url="https://www.google.com/recaptcha/api/siteverify",
        script="https://www.google.com/recaptcha/api.js?render={site_key}",
        response_field="g-recaptcha-response",
        csp={
            "script-src": (
                "https://www.google.com/recaptcha/",
                "https://www.gstatic.com/recaptcha/",
            ),
            "frame-src": (
                "https://www.google.com/recaptcha/",
                "https://recaptcha.google.com/recaptcha/",
            ),
        },
    ),
}

# error-codes that blame our side (secret, site key, request), not the visitor's answer.
_OUR_FAULT = frozenset(
    {
        "missing-input-secret",
        "invalid-input-secret",
        "sitekey-secret-mismatch",
        "invalid-or-already-seen-response-secret",
        "bad-request",
        "internal-error",
    }
)


class CaptchaUnavailable(Exception):
    """Internal: the provider could not give a verdict."""


class CaptchaVerifier:
    def __init__(
        self,
        provider: Provider,
        secret: str,
        *,
        min_score: float,
        timeout: float,
        fail_open: bool,
        client: httpx.AsyncClient,
        expected_action: str | None = None,
    ) -> None:
        self.provider = provider
        self.info = PROVIDERS[provider]
        self._secret = secret
        self.min_score = min_score
        self.timeout = timeout
        self.fail_open = fail_open
        self.expected_action = expected_action
        self._client = client

    async def verify(self, token: str | None, remote_ip: str | None) -> str | None:
        """``None`` if the visitor passed, else a reason (see the module docstring)."""
        if not token or not token.strip():
            return "captcha_missing"
        try:
            answer = await self._siteverify(token.strip(), remote_ip)
        except CaptchaUnavailable as exc:
            if self.fail_open:
                log.warning("%s unavailable, accepting the submission: %s", self.provider, exc)
                return None
            log.warning("%s unavailable, flagging the submission: %s", self.provider, exc)
            return "captcha_unavailable"
        return self._judge(answer)

    async def _siteverify(self, token: str, remote_ip: str | None) -> dict[str, Any]:
        data = {"secret": self._secret, "response": token}
        if remote_ip:
            data["remoteip"] = remote_ip
        try:
            response = await self._client.post(
                self.info.verify_url, data=data, timeout=self.timeout
            )
            response.raise_for_status()
            answer = response.json()
        except httpx.HTTPError as exc:
            raise CaptchaUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # not JSON
            raise CaptchaUnavailable("the answer is not JSON") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("success"), bool):
            raise CaptchaUnavailable("the answer has no success field")
        codes = answer.get("error-codes") or []
        ours = sorted(_OUR_FAULT.intersection(c for c in codes if isinstance(c, str)))
        if not answer["success"] and ours:
            log.error("%s rejects our configuration: %s", self.provider, ", ".join(ours))
            raise CaptchaUnavailable(f"configuration rejected: {', '.join(ours)}")
        return answer

    def _judge(self, answer: dict[str, Any]) -> str | None:
        if not answer["success"]:
            return "captcha_failed"
        if self.expected_action is not None and answer.get("action") != self.expected_action:
            return "captcha_failed"
        score = answer.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            return None  # Turnstile, plain hCaptcha and reCAPTCHA v2 keys have no score
        human = 1.0 - score if self.provider == "hcaptcha" else float(score)
        return "captcha_low_score" if human < self.min_score else None
