"""Captcha verification against each provider's documented siteverify answers, faked with
httpx.MockTransport (no network)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import ValidationError

from leads.abuse.captcha import PROVIDERS, CaptchaVerifier, Provider
from leads.settings import Settings

Answer = Callable[[httpx.Request], httpx.Response]

TURNSTILE_OK = {
    "success": True,
    "challenge_ts": "2022-02-28T15:14:30.096Z",
    "hostname": "clinic.example",
    "error-codes": [],
    "action": "lead",
    "cdata": "",
    "metadata": {"interactive": False},
}
HCAPTCHA_OK = {
    "success": True,
    "challenge_ts": "2024-05-01T10:00:00Z",
    "hostname": "clinic.example",
    "credit": False,
}
RECAPTCHA_OK = {
    "success": True,
    "score": 0.9,
    "action": "lead",
    "challenge_ts": "2024-05-01T10:00:00Z",
    "hostname": "clinic.example",
}


class FakeProvider:
    """Answers siteverify with a fixed reply and remembers what it was asked."""

    def __init__(self, reply: dict[str, Any] | Answer) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if callable(self.reply):
            return self.reply(request)
        return httpx.Response(200, json=self.reply)

    def form(self, index: int = -1) -> dict[str, list[str]]:
        return parse_qs(self.requests[index].content.decode())


@pytest.fixture
async def verifier_for() -> AsyncIterator[Callable[..., tuple[CaptchaVerifier, FakeProvider]]]:
    clients: list[httpx.AsyncClient] = []

    def build(
        provider: Provider, reply: dict[str, Any] | Answer, **options: Any
    ) -> tuple[CaptchaVerifier, FakeProvider]:
        fake = FakeProvider(reply)
        client = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        clients.append(client)
        settings: dict[str, Any] = {"min_score": 0.5, "timeout": 5.0, "fail_open": True, **options}
        return CaptchaVerifier(provider, "shh-secret", client=client, **settings), fake

    yield build
    for client in clients:
        await client.aclose()


@pytest.mark.parametrize(
    ("provider", "reply", "url"),
    [
        ("turnstile", TURNSTILE_OK, "https://challenges.cloudflare.com/turnstile/v0/siteverify"),
        ("hcaptcha", HCAPTCHA_OK, "https://api.hcaptcha.com/siteverify"),
        ("recaptcha", RECAPTCHA_OK, "https://www.google.com/recaptcha/api/siteverify"),
    ],
)
async def test_a_human_passes_and_the_request_is_as_documented(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
    provider: Provider,
    reply: dict[str, Any],
    url: str,
) -> None:
    verifier, fake = verifier_for(provider, reply)
    assert await verifier.verify("token-from-widget", "203.0.113.7") is None
    (request,) = fake.requests
    assert request.method == "POST"
    assert str(request.url) == url
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert fake.form() == {
        "secret": ["shh-secret"],
        "response": ["token-from-widget"],
        "remoteip": ["203.0.113.7"],
    }


async def test_remoteip_is_left_out_when_unknown(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
) -> None:
    verifier, fake = verifier_for("turnstile", TURNSTILE_OK)
    assert await verifier.verify("t", None) is None
    assert "remoteip" not in fake.form()


@pytest.mark.parametrize("provider", ["turnstile", "hcaptcha", "recaptcha"])
@pytest.mark.parametrize("token", [None, "", "   "])
async def test_no_answer_from_the_widget(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
    provider: Provider,
    token: str | None,
) -> None:
    verifier, fake = verifier_for(provider, TURNSTILE_OK)
    assert await verifier.verify(token, "203.0.113.7") == "captcha_missing"
    assert fake.requests == []


@pytest.mark.parametrize(
    ("provider", "reply"),
    [
        (
            "turnstile",
            {"success": False, "error-codes": ["invalid-input-response"], "messages": []},
        ),
        ("turnstile", {"success": False, "error-codes": ["timeout-or-duplicate"]}),
        ("hcaptcha", {"success": False, "error-codes": ["invalid-input-response"]}),
        ("hcaptcha", {"success": False, "error-codes": ["already-seen-response"]}),
        ("recaptcha", {"success": False, "error-codes": ["timeout-or-duplicate"]}),
        ("recaptcha", {"success": False, "error-codes": ["invalid-input-response"]}),
    ],
)
async def test_a_rejected_answer_is_a_failed_captcha(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
    provider: Provider,
    reply: dict[str, Any],
) -> None:
    verifier, _ = verifier_for(provider, reply, fail_open=False)
    assert await verifier.verify("bot-token", None) == "captcha_failed"


@pytest.mark.parametrize(
    ("provider", "reply", "reason"),
    [
        ("recaptcha", {**RECAPTCHA_OK, "score": 0.1}, "captcha_low_score"),
        ("recaptcha", {**RECAPTCHA_OK, "score": 0.5}, None),  # the minimum itself passes
        ("recaptcha", {**RECAPTCHA_OK, "score": 1}, None),
        # hCaptcha Enterprise: the score denotes malicious activity (higher = riskier).
        (
            "hcaptcha",
            {**HCAPTCHA_OK, "score": 0.9, "score_reason": ["automation"]},
            "captcha_low_score",
        ),
        ("hcaptcha", {**HCAPTCHA_OK, "score": 0.1, "score_reason": []}, None),
        # reCAPTCHA v2 keys, or a score that is not a number: no score to judge.
        (
            "recaptcha",
            {"success": True, "challenge_ts": "2024-05-01T10:00:00Z", "hostname": "x"},
            None,
        ),
        ("recaptcha", {**RECAPTCHA_OK, "score": "0.1"}, None),
    ],
)
async def test_scores(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
    provider: Provider,
    reply: dict[str, Any],
    reason: str | None,
) -> None:
    verifier, _ = verifier_for(provider, reply)
    assert await verifier.verify("t", None) == reason


def timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


def connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


OUTAGES: list[Any] = [
    pytest.param(timeout, id="timeout"),
    pytest.param(connect_error, id="connect-error"),
    pytest.param(lambda r: httpx.Response(503, text="busy"), id="http-503"),
    pytest.param(lambda r: httpx.Response(200, text="<html>oops</html>"), id="not-json"),
    pytest.param(lambda r: httpx.Response(200, json=["success"]), id="not-an-object"),
    pytest.param({"error-codes": []}, id="no-success-field"),
    pytest.param({"success": False, "error-codes": ["invalid-input-secret"]}, id="bad-secret"),
    pytest.param({"success": False, "error-codes": ["internal-error"]}, id="internal-error"),
]


@pytest.mark.parametrize("reply", OUTAGES)
async def test_outage_fail_open_accepts_and_logs(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
    reply: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    verifier, fake = verifier_for("turnstile", reply, fail_open=True)
    with caplog.at_level(logging.WARNING, logger="leads.abuse.captcha"):
        assert await verifier.verify("t", "203.0.113.7") is None
    assert len(fake.requests) == 1
    assert any("unavailable, accepting" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("reply", OUTAGES)
async def test_outage_fail_closed_flags(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]], reply: Any
) -> None:
    verifier, _ = verifier_for("hcaptcha", reply, fail_open=False)
    assert await verifier.verify("t", "203.0.113.7") == "captcha_unavailable"


async def test_the_timeout_is_passed_to_httpx(
    verifier_for: Callable[..., tuple[CaptchaVerifier, FakeProvider]],
) -> None:
    seen: list[dict[str, float | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, content=json.dumps(TURNSTILE_OK))

    verifier, _ = verifier_for("turnstile", answer, timeout=2.5)
    assert await verifier.verify("t", None) is None
    assert seen == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}]


def test_what_the_page_needs_from_each_provider() -> None:
    assert (
        PROVIDERS["turnstile"].script_url("site-key")
        == "https://challenges.cloudflare.com/turnstile/v0/api.js"
    )
    assert PROVIDERS["hcaptcha"].script_url("site-key") == "https://js.hcaptcha.com/1/api.js"
    assert (
        PROVIDERS["recaptcha"].script_url("site-key")
        == "https://www.google.com/recaptcha/api.js?render=site-key"
    )
    for info in PROVIDERS.values():
        assert set(info.csp) >= {"script-src", "frame-src"}
        assert all(src.startswith("https://") for srcs in info.csp.values() for src in srcs)


def test_a_provider_needs_its_keys() -> None:
    with pytest.raises(ValidationError, match="LEADS_CAPTCHA_SITE_KEY and LEADS_CAPTCHA_SECRET"):
        Settings(_env_file=None, captcha_provider="turnstile", captcha_site_key="k")  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, captcha_provider="hcaptcha", captcha_site_key="k", captcha_secret="s"
    )
    assert settings.captcha_fail_open is True
    assert "s" not in repr(settings.captcha_secret)
