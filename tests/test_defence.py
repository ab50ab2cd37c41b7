"""Spam and abuse defence through the front door: the time trap, rate limits (memory and a
real Redis shared by two instances), the origin lock, the optional captcha, content rules,
and releasing a lead wrongly flagged as spam."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from leads.abuse.tokens import issue_form_token
from leads.app import create_app
from leads.intake.defence import Defences
from tests.clock import FakeClock, until
from tests.conftest import SECRET, Query, make_settings, migrate, serving_app
from tests.mail import mail_server, smtp_settings
from tests.servers import free_port, redis_server
from tests.support import leads_cli, outbox_rows

FORM = "/f/dry-needling"


def visitor(**fields: str) -> dict[str, str]:
    return {"name": "Ada Lovelace", "email": "ada@example.com", "consent": "true", **fields}


def token_of(page: httpx.Response) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert match, "the hosted form carries no token"
    return html.unescape(match.group(1))


async def spam_of(query: Query) -> list[tuple[bool, str | None]]:
    rows = await query("SELECT spam, spam_reason FROM leads ORDER BY created_at")
    return [(bool(r["spam"]), r["spam_reason"]) for r in rows]


class Clocked:
    """An app whose defences run on a clock the test moves: a client, and the defences."""

    def __init__(self, client: httpx.AsyncClient, defences: Defences, clock: FakeClock):
        self.client, self.defences, self.clock = client, defences, clock


ClockedApp = Callable[..., Any]


@pytest.fixture
async def clocked(database_url: str) -> AsyncIterator[ClockedApp]:
    """``await clocked(**settings)``: an app on the test's database and a FakeClock."""
    async with contextlib.AsyncExitStack() as stack:

        async def build(**overrides: Any) -> Clocked:
            settings = make_settings(database_url, **overrides)
            await migrate(settings)
            clock = FakeClock()
            app = create_app(settings, clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
                    base_url="http://testserver",
                )
            )
            return Clocked(client, app.state.services.defences, clock)

        yield build


# -- time trap ---------------------------------------------------------------------------


async def test_a_form_sent_too_fast_is_kept_flagged_and_not_announced(
    clocked, query: Query
) -> None:
    app = await clocked(min_fill_seconds=3)
    page = await app.client.get(FORM)
    app.clock.advance(2.999)
    sent = await app.client.post(FORM, data={**visitor(), "form_token": token_of(page)})
    assert sent.status_code == 303  # the bot learns nothing
    assert await spam_of(query) == [(True, "too_fast")]
    assert await query("SELECT status FROM outbox") == []  # no notification is even queued


async def test_a_form_filled_at_human_speed_is_a_lead(clocked, query: Query) -> None:
    app = await clocked(min_fill_seconds=3)
    page = await app.client.get(FORM)
    app.clock.advance(3)  # the time a person takes, at the least
    sent = await app.client.post(FORM, data={**visitor(), "form_token": token_of(page)})
    assert sent.status_code == 303
    assert await spam_of(query) == [(False, None)]
    assert len(await query("SELECT status FROM outbox")) == 1  # its notification


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda now: "A" * 36, "token_forged"),
        (lambda now: issue_form_token(SECRET, "dry-needling", now)[:-2] + "xx", "token_forged"),
        (
            lambda now: issue_form_token("another-secret-0123456789", "dry-needling", now - 60),
            "token_forged",
        ),
        (lambda now: issue_form_token(SECRET, "dry-needling", now - 2 * 86400), "token_expired"),
        (lambda now: issue_form_token(SECRET, "other-form", now - 60), "token_wrong_form"),
    ],
)
async def test_forged_expired_or_foreign_tokens_are_flagged(
    clocked, lead, query: Query, token, reason
) -> None:
    app = await clocked(min_fill_seconds=0)
    response = await app.client.post("/api/leads", json=lead(form_token=token(app.clock.now())))
    assert response.status_code == 201
    assert await spam_of(query) == [(True, reason)]


async def test_json_without_a_token_is_accepted_unless_required(
    make_client, lead, query: Query
) -> None:
    relaxed = await make_client()
    assert (await relaxed.post("/api/leads", json=lead())).status_code == 201
    strict = await make_client(require_form_token=True)
    assert (await strict.post("/api/leads", json=lead())).status_code == 201
    assert await spam_of(query) == [(False, None), (True, "token_missing")]


async def test_sites_with_their_own_form_get_a_token_and_the_embed_script(
    clocked, lead, query: Query
) -> None:
    app = await clocked(min_fill_seconds=2, allowed_origins="https://clinic.example")
    client = app.client
    answer = await client.get(
        "/api/form-token?form=dry-needling", headers={"Origin": "https://clinic.example"}
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://clinic.example"
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["form"] == "dry-needling"
    assert body["min_fill_seconds"] == 2
    assert body["expires_in"] == 86400
    foreign = await client.get(
        "/api/form-token?form=dry-needling", headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in foreign.headers
    assert (await client.get("/api/form-token?form=nope")).status_code == 404

    early = await client.post("/api/leads", json=lead(form_token=body["form_token"]))
    app.clock.advance(2)
    sent = await client.post("/api/leads", json=lead(form_token=body["form_token"]))
    assert (early.status_code, sent.status_code) == (201, 201)
    assert await spam_of(query) == [(True, "too_fast"), (False, None)]  # timed from the token

    script = await client.get("/embed.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/api/form-token?form=" in script.text
    # It puts the fetched token in the form's form_token input, adding one if need be.
    assert 'input[name="form_token"]' in script.text
    assert 'input.name = "form_token"' in script.text
    assert "input.value = data.form_token" in script.text


# -- rate limits -------------------------------------------------------------------------


async def test_over_the_limit_is_429_with_retry_after_and_nothing_stored(
    make_client, lead, query: Query
) -> None:
    client = await make_client(rate_limit="2/minute")
    for _ in range(5):  # pages, health checks and the token endpoint never count
        await client.get("/healthz")
        await client.get(FORM)
        await client.get("/api/form-token")
    assert (await client.post("/api/leads", json={"name": ""})).status_code == 422
    first = await client.post("/api/leads", json=lead())
    second = await client.post("/api/leads", json=lead())
    third = await client.post("/api/leads", json=lead())
    assert [first.status_code, second.status_code] == [201, 201]
    assert third.status_code == 429
    assert third.headers["content-type"] == "application/problem+json"
    assert third.json()["code"] == "rate_limited"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert len(await query("SELECT id FROM leads")) == 2
    form = await client.post(FORM, data=visitor(message="kept for later"))
    assert form.status_code == 429  # the hosted form says so, and keeps nothing it read
    assert "retry-after" in form.headers


async def test_the_hosted_form_keeps_what_was_typed_when_the_email_is_over_its_limit(
    make_client,
) -> None:
    client = await make_client(rate_limit="1/minute", trusted_proxies="203.0.113.0/24")
    first = await client.post(FORM, data=visitor(), headers={"X-Forwarded-For": "198.51.100.1"})
    assert first.status_code == 303
    again = await client.post(
        FORM,
        data=visitor(message="My second try"),
        headers={"X-Forwarded-For": "198.51.100.2"},  # another address, the same email
    )
    assert again.status_code == 429
    assert "My second try" in again.text
    assert "try again in" in again.text


async def test_limits_count_per_email_and_phone_across_addresses(
    make_client, lead, query: Query
) -> None:
    client = await make_client(rate_limit="2/minute", trusted_proxies="203.0.113.7/32")

    def post(ip: str, **fields: Any):
        return client.post("/api/leads", json=lead(**fields), headers={"X-Forwarded-For": ip})

    statuses = [
        (await post("198.51.100.1", email="same@example.com")).status_code,
        (await post("198.51.100.2", email="same@example.com")).status_code,
        (await post("198.51.100.3", email="SAME@example.com")).status_code,
        (await post("198.51.100.4", email=None, phone="+12025550143")).status_code,
        (await post("198.51.100.5", email=None, phone="202-555-0143")).status_code,
        (await post("198.51.100.6", email=None, phone="(202) 555 0143")).status_code,
    ]
    assert statuses == [201, 201, 429, 201, 201, 429]
    # A returning visitor's second submission is an enquiry on their lead.
    ips = {
        r["client_ip"]
        for r in await query("SELECT client_ip FROM leads UNION SELECT client_ip FROM enquiries")
    }
    assert ips == {"198.51.100.1", "198.51.100.2", "198.51.100.4", "198.51.100.5"}


async def test_spam_naming_someone_uses_up_its_own_address_not_their_allowance(
    make_client, lead, query: Query
) -> None:
    client = await make_client(rate_limit="2/minute", trusted_proxies="203.0.113.7/32")
    victim = {"email": "victim@example.com", "phone": "+12025550143"}

    async def post(ip: str, **fields: Any) -> int:
        body = lead(**{**victim, **fields})
        response = await client.post("/api/leads", json=body, headers={"X-Forwarded-For": ip})
        return response.status_code

    # Honeypot posts naming the victim, from three addresses: stored flagged, and the
    # victim's email and phone keep their whole allowance.
    assert [await post(f"198.51.100.{n}", website="x") for n in (1, 2, 3)] == [201] * 3
    assert await post("198.51.100.9") == 201
    assert await post("198.51.100.8") == 201
    assert await spam_of(query) == [(True, "honeypot")] * 3 + [(False, None)]  # one lead
    # Now the victim's allowance is used up: the email's limit is still tested for spam.
    assert await post("198.51.100.4", website="x") == 429
    # A flagged submission still counts against the address that sent it.
    other = {"email": "someone@example.com", "phone": None}
    assert await post("198.51.100.1", website="x", **other) == 201
    assert await post("198.51.100.1", website="x", **other) == 429
    assert len(await query("SELECT id FROM leads")) == 5


async def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(
    make_client, lead, query: Query
) -> None:
    client = await make_client(rate_limit="2/minute")  # no trusted proxies
    statuses = [
        (
            await client.post("/api/leads", json=lead(), headers={"X-Forwarded-For": f"10.0.0.{n}"})
        ).status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 429]
    assert {r["client_ip"] for r in await query("SELECT client_ip FROM leads")} == {"203.0.113.7"}


async def test_instances_sharing_redis_share_the_limit(database_url: str, lead) -> None:
    with redis_server(free_port()) as redis_url:
        settings = make_settings(database_url, rate_limit="3/minute", rate_limit_storage=redis_url)
        async with serving_app(settings) as one, serving_app(settings) as two:
            statuses = [
                (await client.post("/api/leads", json=lead())).status_code
                for client in (one, two, one, two)
            ]
    assert statuses == [201, 201, 201, 429]


# -- origin lock -------------------------------------------------------------------------


async def test_submissions_from_other_sites_are_refused(make_client, lead) -> None:
    client = await make_client(allowed_origins="https://clinic.example")

    async def post(origin: str | None) -> int:
        headers = {"Origin": origin} if origin else {}
        return (await client.post("/api/leads", json=lead(), headers=headers)).status_code

    assert await post("https://clinic.example") == 201
    assert await post(None) == 201
    assert await post("http://testserver") == 201  # our own hosted form
    refused = await client.post(
        "/api/leads", json=lead(), headers={"Origin": "https://evil.example"}
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed"
    form = await client.post(FORM, data=visitor(), headers={"Origin": "https://evil.example"})
    assert form.status_code == 403
    preflight = await client.options(
        "/api/leads",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_without_allowed_origins_no_site_is_refused_or_granted_cors(
    make_client, lead
) -> None:
    client = await make_client()
    response = await client.post(
        "/api/leads", json=lead(), headers={"Origin": "https://anywhere.example"}
    )
    assert response.status_code == 201
    assert "access-control-allow-origin" not in response.headers


# -- captcha (Cloudflare Turnstile's documented siteverify answers) ------------------------


@contextlib.asynccontextmanager
async def turnstile_app(database_url: str, **extra: Any) -> AsyncIterator[httpx.AsyncClient]:
    def siteverify(request: httpx.Request) -> httpx.Response:
        assert request.url == "https://challenges.cloudflare.com/turnstile/v0/siteverify"
        form = dict(httpx.QueryParams(request.content.decode()))
        assert form["secret"] == "turnstile-secret"
        if form["response"] == "human":
            return httpx.Response(200, json={
                "success": True, "challenge_ts": "2026-11-24T12:00:00.000Z",
                "hostname": "testserver", "error-codes": [], "action": "", "cdata": "",
            })  # fmt: skip
        return httpx.Response(
            200, json={"success": False, "error-codes": ["invalid-input-response"]}
        )

    settings = make_settings(
        database_url, captcha_provider="turnstile", captcha_site_key="site-key-1",
        captcha_secret="turnstile-secret", **extra,
    )  # fmt: skip
    async with serving_app(settings, http_transport=httpx.MockTransport(siteverify)) as client:
        yield client


async def test_turnstile_widget_only_when_enabled_and_its_verdict_flags(
    database_url: str, query: Query
) -> None:
    async with turnstile_app(database_url) as client:
        page = await client.get(FORM)
        assert 'class="cf-turnstile" data-sitekey="site-key-1"' in page.text
        assert "https://challenges.cloudflare.com/turnstile/v0/api.js" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self' https://challenges.cloudflare.com" in csp
        assert "frame-src https://challenges.cloudflare.com" in csp
        for answer in ("human", "robot", None):
            data = visitor(email=f"{answer}@example.com")
            if answer:
                data["cf-turnstile-response"] = answer
            assert (await client.post(FORM, data=data)).status_code == 303
    assert await spam_of(query) == [
        (False, None), (True, "captcha_failed"), (True, "captcha_missing"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "field",
    ["captcha_token", "cf-turnstile-response", "h-captcha-response", "g-recaptcha-response"],
)
async def test_the_captcha_answer_is_read_from_each_widgets_field(
    database_url: str, query: Query, field: str
) -> None:
    async with turnstile_app(database_url) as client:
        for answer in ("human", "robot"):
            data = visitor(email=f"{answer}@example.com", **{field: answer})
            assert (await client.post(FORM, data=data)).status_code == 303
    assert await spam_of(query) == [(False, None), (True, "captcha_failed")]


# -- content rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"message": "cheap https://a.example https://b.example http://c.example www.d.example"},
            "too_many_links",
        ),
        ({"message": "Best CASINO bonus today"}, "blocked_term"),
        ({"name": "https://spam.example"}, "name_is_url"),
    ],
)
async def test_content_rules_flag_without_refusing(
    make_client, lead, query: Query, fields, reason
) -> None:
    client = await make_client(blocked_terms="casino,crypto", max_links=3)
    assert (await client.post("/api/leads", json=lead(**fields))).status_code == 201
    assert await spam_of(query) == [(True, reason)]
    assert await query("SELECT status FROM outbox") == []


async def test_an_ordinary_message_is_not_spam(make_client, lead, query: Query) -> None:
    client = await make_client(blocked_terms="casino", max_links=3)
    body = lead(message="Saw Dr. Smith at 3.30pm; see clinic.example for my notes. Thanks!")
    assert (await client.post("/api/leads", json=body)).status_code == 201
    assert await spam_of(query) == [(False, None)]


# -- release ------------------------------------------------------------------------------


async def test_releasing_a_flagged_lead_notifies_the_clinic_then(
    make_client, lead, query: Query, database_url: str
) -> None:
    with mail_server() as smtp:
        client = await make_client(**smtp_settings(smtp, blocked_terms="needles"))
        created = await client.post("/api/leads", json=lead(message="Are the needles thin?"))
        lead_id = created.json()["id"]
        assert await query("SELECT status FROM outbox") == []

        # Run as the service runs (docs/operations.md): with its settings, so the
        # notifications go where the service's would.
        service = {"LEADS_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}?starttls=off",
                   "LEADS_INBOX": "desk@clinic.example,owner@clinic.example"}  # fmt: skip
        done = await asyncio.to_thread(
            leads_cli, database_url, "spam", "release", lead_id, **service
        )
        assert done.returncode == 0, done.stderr
        assert "1 notification(s)" in done.stdout
        (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
        assert "Are the needles thin?" in mail.part("plain")
        await outbox_rows(query, until="delivered")
        (row,) = await query("SELECT spam, spam_reason FROM leads")
        assert not row["spam"]
        assert row["spam_reason"] == "released; was: blocked_term"
        # The command line releases as the staff side does: on the timeline, in the audit log.
        events = await query("SELECT kind, actor FROM lead_events")
        assert [(e["kind"], e["actor"]) for e in events] == [("released", "cli")]
        audit = await query("SELECT action, actor FROM audit_log")
        assert [(a["action"], a["actor"]) for a in audit] == [("lead_released", "cli")]

        again = await asyncio.to_thread(leads_cli, database_url, "spam", "release", lead_id)
        assert again.returncode == 2
        assert "not flagged as spam" in again.stderr


async def test_odd_origins_never_break_the_lock(make_client, lead) -> None:
    client = await make_client(allowed_origins="https://Clinic.example")

    async def post(origin: str) -> int:
        response = await client.post("/api/leads", json=lead(), headers={"Origin": origin})
        return response.status_code

    assert await post("http://[") == 403  # malformed: refused, not a 500
    assert await post("https://clinic.example") == 201  # configured in another case


async def test_origin_null_is_refused_and_granted_no_cors(make_client, lead, query) -> None:
    client = await make_client(allowed_origins="https://clinic.example")
    null = {"Origin": "null"}
    refused = await client.post("/api/leads", json=lead(), headers=null)
    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers
    form = await client.post(FORM, data=visitor(), headers=null)
    assert form.status_code == 403
    preflight = await client.options(
        "/api/leads", headers={**null, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    token = await client.get("/api/form-token?form=dry-needling", headers=null)
    assert "access-control-allow-origin" not in token.headers
    assert await query("SELECT id FROM leads") == []

    open_to_all = await make_client()  # no LEADS_ALLOWED_ORIGINS: nothing changes
    assert (await open_to_all.post("/api/leads", json=lead(), headers=null)).status_code == 201


async def test_origin_null_is_accepted_when_listed(make_client, lead) -> None:
    client = await make_client(allowed_origins="https://clinic.example,null")
    sent = await client.post("/api/leads", json=lead(), headers={"Origin": "null"})
    assert sent.status_code == 201
    assert sent.headers["access-control-allow-origin"] == "null"


async def test_the_hosted_form_keeps_what_was_typed_when_the_address_is_over_its_limit(
    make_client,
) -> None:
    client = await make_client(rate_limit="1/minute")
    assert (await client.post(FORM, data=visitor())).status_code == 303
    again = await client.post(FORM, data=visitor(message="Still here after a 429"))
    assert again.status_code == 429
    assert "Still here after a 429" in again.text


async def test_a_retry_of_a_request_that_succeeded_gets_its_answer_even_at_the_limit(
    make_client, lead
) -> None:
    client = await make_client(rate_limit="1/minute")
    body = lead()
    first = await client.post("/api/leads", json=body, headers={"Idempotency-Key": "try-1"})
    again = await client.post("/api/leads", json=body, headers={"Idempotency-Key": "try-1"})
    other = await client.post("/api/leads", json=lead(), headers={"Idempotency-Key": "try-2"})
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 429)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


# -- tarpit (on a clock the test moves: a held answer waits for the clock, nothing else) ---


async def test_refused_and_flagged_submissions_wait_in_the_tarpit_real_ones_do_not(
    clocked, lead, query: Query
) -> None:
    hold = 1.0
    app = await clocked(
        rate_limit="1/minute", tarpit_seconds=hold, trusted_proxies="203.0.113.7/32"
    )
    tarpit, clock = app.defences.tarpit, app.clock

    def post(ip: str, **fields: Any) -> asyncio.Future[httpx.Response]:
        return asyncio.ensure_future(
            app.client.post("/api/leads", json=lead(**fields), headers={"X-Forwarded-For": ip})
        )

    accepted = await post("198.51.100.1")  # answered while the clock stands still
    assert accepted.status_code == 201
    held_at = clock.now()
    refused = post("198.51.100.1")
    await until(lambda: tarpit.held == 1)
    # Due one to two intervals from now, at a tick (a tenth of an interval).
    (wake,) = clock.wakes
    assert held_at + hold - 1e-6 <= wake <= held_at + 2 * hold + hold / 10 + 1e-6
    clock.advance(hold - 0.001)
    assert not refused.done()  # its tick lies ahead: it cannot be out
    assert tarpit.held == 1
    clock.advance(hold * 1.2)
    assert (await refused).status_code == 429
    assert "connection" not in refused.result().headers  # held, so the connection stays open

    # Eight bots at once, each from its own address: each held 1-2 x hold, and kept.
    held_at = clock.now()
    bots = [post(f"198.51.100.{10 + n}", website="http://spam.example") for n in range(8)]
    await until(lambda: tarpit.held == 8)
    assert all(held_at + hold - 1e-6 <= at <= held_at + 2.1 * hold + 1e-6 for at in clock.wakes)
    clock.advance(2.2 * hold)
    assert [(await bot).status_code for bot in bots] == [201] * 8
    assert tarpit.held == 0
    assert len(await query("SELECT id FROM leads WHERE spam")) == 8


async def test_a_full_tarpit_answers_429_at_once_and_still_keeps_flagged_submissions(
    clocked, lead, query: Query
) -> None:
    app = await clocked(
        rate_limit="1/minute",
        tarpit_seconds=3.0,
        tarpit_capacity=1,
        trusted_proxies="203.0.113.7/32",
    )

    def post(ip: str, **fields: Any) -> Any:
        return app.client.post("/api/leads", json=lead(**fields), headers={"X-Forwarded-For": ip})

    assert (await post("198.51.100.1")).status_code == 201
    first = asyncio.ensure_future(post("198.51.100.1"))
    await until(lambda: app.defences.tarpit.held == 1)  # the tarpit is full now
    # Both answered with the clock standing still: neither waited.
    refused = await post("198.51.100.1")
    bot = await post("198.51.100.2", website="http://spam.example")
    assert (refused.status_code, bot.status_code) == (429, 201)
    assert refused.headers["connection"] == "close"
    assert refused.json()["code"] == "rate_limited"
    assert "retry-after" in refused.headers
    # Someone else's flood filled the tarpit: a submission judged to be spam (it may be a
    # person) is stored at once, flagged, rather than refused.
    assert "connection" not in bot.headers
    assert not first.done()
    app.clock.advance(6.5)  # past two intervals and a tick: the held one is out
    held = await first
    assert held.status_code == 429
    assert "connection" not in held.headers
    assert await spam_of(query) == [(False, None), (True, "honeypot")]
