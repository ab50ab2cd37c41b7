"""/metrics through HTTP: who may read it, what moves its numbers, and the numbers of several
`leads serve` workers (and of the LEADS_METRICS_BIND listener) added up in one scrape."""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from leads.app import create_app
from leads.core.vocabulary import Role
from leads.staff.accounts import add_user
from leads.storage.database import Database
from tests.clock import FakeClock
from tests.conftest import AppClient, make_settings, migrate
from tests.servers import free_port, leads_process
from tests.support import SECRET, eventually, leads_env

TOKEN = "metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()

Lead = Callable[..., dict[str, Any]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def submissions(samples: Samples, outcome: str) -> float:
    return value(samples, "leads_submissions_total", outcome=outcome)


# -- access ------------------------------------------------------------------------------


async def test_without_a_token_there_is_no_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 404
    assert (await client.get("/metrics", headers=AUTH)).status_code == 404


async def test_the_token_is_asked_for(make_client: AppClient) -> None:
    client = await make_client(metrics_token=TOKEN)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        response = await client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in response.text
    await scrape(client)


async def test_with_a_listener_of_its_own_the_main_port_has_no_metrics(
    make_client: AppClient,
) -> None:
    client = await make_client(metrics_token=TOKEN, metrics_bind=f"127.0.0.1:{free_port()}")
    assert (await client.get("/metrics", headers=AUTH)).status_code == 404


# -- what is counted ---------------------------------------------------------------------


async def test_each_outcome_of_a_submission_is_counted(make_client: AppClient, lead: Lead) -> None:
    client = await make_client(metrics_token=TOKEN, rate_limit="2/minute")
    before = await scrape(client)
    assert {submissions(before, o) for o in ("stored", "spam", "invalid", "rate_limited")} == {0}
    assert (await client.post("/api/leads", json=lead(consent=False))).status_code == 422
    assert (await client.post("/api/leads", json=lead())).status_code == 201
    assert (
        await client.post("/api/leads", json=lead(website="http://x.example"))
    ).status_code == 201
    assert (await client.post("/api/leads", json=lead())).status_code == 429  # the IP's third
    after = await scrape(client)
    assert submissions(after, "invalid") == 1
    assert submissions(after, "stored") == 1
    assert submissions(after, "spam") == 1
    assert submissions(after, "rate_limited") == 1
    assert submissions(after, "busy") == 0
    assert value(after, "leads_intake_batch_size_count") == 2  # stored and spam, one batch each
    assert value(after, "leads_intake_batch_size_bucket", le="1.0") == 2


async def test_deliveries_by_channel_and_outcome_and_the_outbox_gauges(
    database_url: str, lead: Lead
) -> None:
    answers = {"/ok": 200, "/later": 503, "/never": 400}

    def hooks(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers[request.url.path])

    urls = ",".join(f"https://hooks.example{path}" for path in answers)
    async with app_at(
        database_url,
        FakeClock(time.time()),
        http_transport=httpx.MockTransport(hooks),
        metrics_token=TOKEN,
        webhook_urls=urls,
        webhook_secret=WEBHOOK_SECRET,
        retry_base_seconds=3600,
    ) as client:
        assert (await client.post("/api/leads", json=lead())).status_code == 201
        samples = await eventually(lambda: settled(client), what="three webhook attempts")
    for outcome in ("delivered", "retry", "dead"):
        assert value(samples, "leads_deliveries_total", channel="webhook", outcome=outcome) == 1
    assert value(samples, "leads_deliveries_total", channel="smtp", outcome="delivered") == 0
    assert value(samples, "leads_outbox_pending") == 1  # the one waiting for its retry
    assert value(samples, "leads_outbox_dead") == 1
    assert 0 <= value(samples, "leads_outbox_oldest_pending_seconds") < 60


async def settled(client: httpx.AsyncClient) -> Samples | None:
    """The scrape once every webhook message has had its first attempt recorded."""
    samples = await scrape(client)
    done = sum(
        value(samples, "leads_deliveries_total", channel="webhook", outcome=o)
        for o in ("delivered", "retry", "dead")
    )
    return samples if done == 3 and value(samples, "leads_outbox_dead") == 1 else None


@contextlib.asynccontextmanager
async def app_at(
    database_url: str,
    clock: FakeClock,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """An app on the test's database whose handlers read time from ``clock``."""
    settings = make_settings(database_url, **overrides)
    await migrate(settings)
    app = create_app(settings, clock=clock, http_transport=http_transport)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
            base_url="http://testserver",
        ) as client,
    ):
        yield client


async def test_the_backlog_and_the_age_of_its_oldest_message(database_url: str, lead: Lead) -> None:
    clock = FakeClock(time.time())
    async with app_at(database_url, clock, metrics_token=TOKEN, dispatcher="worker") as client:
        empty = await scrape(client)
        assert value(empty, "leads_outbox_pending") == 0
        assert value(empty, "leads_outbox_oldest_pending_seconds") == 0
        for _ in range(3):
            assert (await client.post("/api/leads", json=lead())).status_code == 201
        clock.advance(600)
        samples = await scrape(client)
    assert value(samples, "leads_outbox_pending") == 3  # one log message each, undelivered
    # Queued by the real clock a moment after the fake one started: about 600 s before "now".
    assert 540 < value(samples, "leads_outbox_oldest_pending_seconds") <= 600
    assert value(samples, "leads_outbox_dead") == 0


async def test_request_latency_is_labelled_by_route_template_never_by_path(
    make_client: AppClient,
) -> None:
    client = await make_client(metrics_token=TOKEN)
    lead_id = str(uuid.uuid4())
    assert (await client.get("/f/dry-needling")).status_code == 200
    assert (await client.get(f"/api/staff/leads/{lead_id}")).status_code == 401
    assert (await client.get(f"/no/such/{lead_id}")).status_code == 404
    assert (await client.get("/static/form.css")).status_code == 200
    response = await client.get("/metrics", headers=AUTH)
    samples = parse(response.text)
    assert lead_id not in response.text
    assert "/no/such" not in response.text
    assert "form.css" not in response.text

    def count(route: str, method: str, status_class: str) -> float:
        labels = {"route": route, "method": method, "status_class": status_class}
        return value(samples, "leads_request_duration_seconds_count", **labels)

    assert count("/f/{slug}", "GET", "2xx") == 1
    assert count("/api/staff/leads/{lead_id}", "GET", "4xx") == 1
    assert count("unmatched", "GET", "4xx") == 1
    assert count("/static/{path}", "GET", "2xx") == 1
    routes = {dict(labels).get("route") for name, labels in samples if "duration" in name}
    expected = {"/f/{slug}", "/api/staff/leads/{lead_id}", "unmatched", "/static/{path}"}
    assert routes <= {None, *expected}


async def test_staff_sign_ins_by_outcome(database_url: str) -> None:
    clock = FakeClock(time.time())
    email, password = "desk@clinic.example", "correct horse battery"
    async with app_at(database_url, clock, metrics_token=TOKEN) as client:
        database = Database.from_settings(make_settings(database_url))
        try:
            async with database.writing() as session:
                await add_user(
                    session=session,
                    now=clock_now(clock),
                    email=email,
                    password=password,
                    role=Role.STAFF,
                    actor="cli",
                )
        finally:
            await database.close()

        async def sign_in(typed: str) -> int:
            page = await client.get("/staff/login")
            token = page.text.split('name="login_token" value="', 1)[1].split('"', 1)[0]
            data = {"login_token": token, "email": email, "password": typed}
            return (await client.post("/staff/login", data=data)).status_code

        assert await sign_in(password) == 303
        for _ in range(5):
            assert await sign_in("wrong password") == 200
        assert await sign_in(password) == 429
        samples = await scrape(client)
    assert value(samples, "leads_staff_logins_total", outcome="success") == 1
    assert value(samples, "leads_staff_logins_total", outcome="failure") == 5
    assert value(samples, "leads_staff_logins_total", outcome="throttled") == 1


def clock_now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock.now(), UTC)


# -- real servers ------------------------------------------------------------------------


def fresh_get(url: str, **kw: Any) -> httpx.Response:
    """One request on a connection of its own, so that any worker may answer it."""
    with httpx.Client(timeout=10) as http:
        return http.get(url, **kw)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_add_up_in_one_scrape(postgres_url: str, lead: Lead) -> None:
    env = leads_env(
        database_url=postgres_url, secret_key=SECRET, rate_limit="off", metrics_token=TOKEN
    )
    port = free_port()
    with leads_process(env, "serve", "--port", str(port), "--workers", "2", port=port) as service:
        count = 12
        for _ in range(count):
            with httpx.Client(timeout=10) as http:  # a new connection: either worker
                assert http.post(f"{service.url}/api/leads", json=lead()).status_code == 201
        for _ in range(6):  # whichever worker answers the scrape counts every worker's
            samples = parse(fresh_get(f"{service.url}/metrics", headers=AUTH).text)
            assert submissions(samples, "stored") == count
            assert value(samples, "leads_intake_batch_size_count") == count
        assert "Traceback" not in service.output()


@pytest.mark.slow
def test_the_metrics_listener_serves_without_a_token(tmp_path: Path, lead: Lead) -> None:
    bind_port = free_port()
    env = leads_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}",
        secret_key=SECRET,
        rate_limit="off",
        metrics_bind=f"127.0.0.1:{bind_port}",
        dispatcher="worker",
    )
    with leads_process(env) as service:
        assert httpx.post(f"{service.url}/api/leads", json=lead()).status_code == 201
        assert httpx.get(f"{service.url}/metrics").status_code == 404
        response = fresh_get(f"http://127.0.0.1:{bind_port}/metrics")
        assert response.status_code == 200, response.text
        samples = parse(response.text)
        assert submissions(samples, "stored") == 1
        assert value(samples, "leads_outbox_pending") == 1
        assert fresh_get(f"http://127.0.0.1:{bind_port}/f/dry-needling").status_code == 404
        [directory] = re.findall(r"PROMETHEUS_MULTIPROC_DIR=(\S+)", service.output())
        assert Path(directory).is_dir()
        service.process.terminate()
        assert service.process.wait(timeout=20) == -signal.SIGTERM  # as before: died of it
    assert not Path(directory).exists()  # the workers' files are removed on the way out
