"""Optional captcha (``LEADS_CAPTCHA_PROVIDER``): Cloudflare Turnstile, hCaptcha or
reCAPTCHA v3, checked server-side through the provider's ``siteverify`` endpoint.

    verifier = CaptchaVerifier("turnstile", secret, min_score=0.5, timeout=5,
                               fail_open=True, client=http_client)
    reason = await verifier.verify(submission.captcha_token, ip)

``verify`` answers ``None`` (human enough) or one :class:`CaptchaReason` to flag the lead as
spam. Fail-open (the default), a provider that cannot be asked answers ``None`` and logs a
warning. :class:`Captcha` is that check as a spam rule (leads/abuse/rules.py), on only when
a provider and its secret are configured.

The request is form-encoded ``secret``, ``response`` and (when known) ``remoteip``; the
answer is JSON ``{"success": bool, "error-codes": [...], "score": float, "action",
"hostname", "challenge_ts"}``. Errors that mean our configuration is wrong (a bad secret)
are treated as "unavailable", not as the visitor's fault, and logged as errors.

For the page template, ``PROVIDERS[provider]`` gives the widget's script URL
(``script_url(site_key)``; reCAPTCHA v3 needs the site key in it) and the
Content-Security-Policy sources it needs (``csp``: directive -> sources), as each provider
documents them. The field each widget fills in is read by the parser
(leads/intake/submission.py, ``CAPTCHA_FIELDS``):

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from leads.abuse.rules import Reason, RuleSetup, Screened, Visit
from leads.outbound import HTTPClient

log = logging.getLogger(__name__)

Provider = Literal["turnstile", "hcaptcha", "recaptcha"]


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    verify_url: str
    script: str
    csp: Mapping[str, tuple[str, ...]]

    def script_url(self, site_key: str) -> str:
        return self.script.format(site_key=quote(site_key, safe=""))


_HCAPTCHA_HOSTS = ("https://hcaptcha.com", "https://*.hcaptcha.com")
PROVIDERS: Mapping[Provider, ProviderInfo] = {
    "turnstile": ProviderInfo(
        verify_url="https://challenges.cloudflare.com/turnstile/v0/siteverify",
        script="https://challenges.cloudflare.com/turnstile/v0/api.js",
        csp={
            "script-src": ("https://challenges.cloudflare.com",),
            "frame-src": ("https://challenges.cloudflare.com",),
        },
    ),
    "hcaptcha": ProviderInfo(
        verify_url="https://api.hcaptcha.com/siteverify",
        script="https://js.hcaptcha.com/1/api.js",
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


class CaptchaReason(Reason):
    MISSING = (
        "captcha_missing",
        "A captcha is configured and the submission carried no answer.",
    )
    FAILED = (
        "captcha_failed",
        "The provider says the answer is wrong, expired or already used.",
    )
    # hCaptcha Enterprise's risk score grows with risk: there, above 1 - min_score.
    LOW_SCORE = (
        "captcha_low_score",
        "The reCAPTCHA v3 (or hCaptcha Enterprise) score is below `LEADS_CAPTCHA_MIN_SCORE`.",
    )
    # Timeout, network or HTTP error, an unreadable answer, or it rejects *our* secret or
    # request (then also logged as an error): never the visitor's fault.
    UNAVAILABLE = (
        "captcha_unavailable",
        "The provider could not be asked, and `LEADS_CAPTCHA_FAIL_OPEN=false`.",
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
        client: HTTPClient,
    ) -> None:
        self.provider = provider
        self.info = PROVIDERS[provider]
        self._secret = secret
        self.min_score = min_score
        self.timeout = timeout
        self.fail_open = fail_open
        self._client = client

    async def verify(self, token: str | None, remote_ip: str | None) -> CaptchaReason | None:
        """``None`` if the visitor passed, else a reason (see the module docstring)."""
        if not token or not token.strip():
            return CaptchaReason.MISSING
        try:
            answer = await self._siteverify(token.strip(), remote_ip)
        except CaptchaUnavailable as exc:
            if self.fail_open:
                log.warning("%s unavailable, accepting the submission: %s", self.provider, exc)
                return None
            log.warning("%s unavailable, flagging the submission: %s", self.provider, exc)
            return CaptchaReason.UNAVAILABLE
        return self._judge(answer)

    async def _siteverify(self, token: str, remote_ip: str | None) -> dict[str, Any]:
        import httpx  # here, not at start: leads/outbound.py

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

    def _judge(self, answer: dict[str, Any]) -> CaptchaReason | None:
        if not answer["success"]:
            return CaptchaReason.FAILED
        score = answer.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            return None  # Turnstile, plain hCaptcha and reCAPTCHA v2 keys have no score
        human = 1.0 - score if self.provider == "hcaptcha" else float(score)
        return CaptchaReason.LOW_SCORE if human < self.min_score else None


class Captcha:
    """The spam rule: the captcha answer, checked with the configured provider."""

    name: ClassVar[str] = "captcha"
    reasons: ClassVar[type[Reason]] = CaptchaReason

    def __init__(self, verifier: CaptchaVerifier) -> None:
        self.verifier = verifier

    @classmethod
    def from_settings(cls, setup: RuleSetup) -> Captcha | None:
        settings = setup.settings
        if settings.captcha_provider is None or settings.captcha_secret is None:
            return None
        return cls(
            CaptchaVerifier(
                settings.captcha_provider,
                settings.captcha_secret.get_secret_value(),
                min_score=settings.captcha_min_score,
                timeout=settings.captcha_timeout_seconds,
                fail_open=settings.captcha_fail_open,
                client=setup.http,
            )
        )

    async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
        reason = await self.verifier.verify(submission.captcha_token, visit.client_ip)
        return [reason] if reason else []
