"""The public JSON contract of POST /api/leads, rule by rule, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from leads.app import create_app
from tests.conftest import Query, make_settings, migrate

PROBLEM = "application/problem+json"


async def post(client: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
    return await client.post("/api/leads", json=body, **kw)


def errors_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {e["field"]: e["code"] for e in response.json()["errors"]}


async def test_valid_lead_is_committed_before_201(client, lead, query: Query) -> None:
    """Committed before the answer; the answer's id is this submission's receipt."""
    response = await post(
        client,
        lead(
            name="  Ann Smith ",
            email="Ann@EXAMPLE.com",
            phone="(202) 555-0143",
            message="Hello\r\nthere",
        ),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "received"
    rows = await query("SELECT * FROM leads")
    assert len(rows) == 1
    row = rows[0]
    assert str(row["receipt_id"]).replace("-", "") == body["id"].replace("-", "")
    assert str(row["id"]).replace("-", "") != body["id"].replace("-", "")
    assert row["name"] == "Ann Smith"
    assert row["email"] == "Ann@example.com"
    assert row["phone"] == "+12025550143"
    assert row["message"] == "Hello\nthere"
    assert row["status"] == "new"
    assert row["form"] == "dry-needling"
    assert not row["spam"]
    assert row["consent_version"].startswith("sha256:")
    assert row["client_ip"] == "203.0.113.7"


async def test_ids_are_random_not_sequential(client, lead) -> None:
    ids = [(await post(client, lead())).json()["id"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(len(i) >= 32 for i in ids)
    # Random (version 4) UUIDs: nothing in an id tells how many leads came before.
    assert {uuid.UUID(i).version for i in ids} == {4}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": ""}, {"name": "required"}),
        ({"name": "   "}, {"name": "required"}),
        ({"name": "x" * 101}, {"name": "too_long"}),
        ({"name": "Ann\nSmith"}, {"name": "control_characters"}),
        ({"name": "Ann\x00"}, {"name": "control_characters"}),
        ({"name": 42}, {"name": "invalid_type"}),
        ({"email": "not-an-email"}, {"email": "invalid_email"}),
        ({"email": None}, {"email": "contact_required", "phone": "contact_required"}),
        ({"email": "", "phone": ""}, {"email": "contact_required", "phone": "contact_required"}),
        ({"phone": "12"}, {"phone": "invalid_phone"}),
        ({"preferred_contact": "fax"}, {"preferred_contact": "invalid_choice"}),
        ({"preferred_contact": "text"}, {"phone": "required_for_preferred_contact"}),
        ({"message": "x" * 2001}, {"message": "too_long"}),
        ({"message": "bad\x00byte"}, {"message": "control_characters"}),
        ({"interest": "Knitting"}, {"interest": "invalid_choice"}),
        ({"form": "no-such-form"}, {"form": "unknown_form"}),
        ({"consent": False}, {"consent": "consent_required"}),
        ({"consent": None}, {"consent": "consent_required"}),
        ({"utm_source": "x" * 501}, {"utm_source": "too_long"}),
        ({"referrer": "a\rb"}, {"referrer": "control_characters"}),
        ({"colour": "blue"}, {"colour": "unknown_field"}),
    ],
)
async def test_each_bad_field_is_named(client, lead, query: Query, fields, expected) -> None:
    response = await post(client, lead(**fields))
    assert errors_of(response) == expected
    assert await query("SELECT id FROM leads") == []


async def test_every_bad_field_is_reported_at_once(client) -> None:
    response = await post(client, {"name": "", "phone": "1", "consent": False, "x": 1})
    assert errors_of(response) == {
        "x": "unknown_field",
        "name": "required",
        "phone": "invalid_phone",
        "consent": "consent_required",
    }
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"]
    assert problem["title"]


async def test_optional_null_and_empty_mean_absent(client, lead) -> None:
    response = await post(
        client,
        lead(
            message="", interest=None, phone="", utm_source=None, preferred_contact="", website=""
        ),
    )
    assert response.status_code == 201


async def test_lone_surrogate_is_a_field_error_not_a_500(client, lead) -> None:
    raw = '{"name": "A\\ud800", "email": "a@example.com", "consent": true}'
    response = await client.post(
        "/api/leads", content=raw, headers={"content-type": "application/json"}
    )
    assert errors_of(response) == {"name": "control_characters"}


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"{not json", b"\xff\xfe", b"[" * 15000])
async def test_a_body_that_is_not_a_json_object_is_400(client, body) -> None:
    response = await client.post(
        "/api/leads", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM


async def test_other_content_types_are_415(client) -> None:
    response = await client.post("/api/leads", data={"name": "x"})
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_too_large_is_413_before_parsing(make_client, lead, query: Query) -> None:
    client = await make_client(max_body_bytes=300)
    response = await post(client, lead(message="x" * 400))
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM

    async def chunks():
        for _ in range(10):
            yield b" " * 100

    response = await client.post(
        "/api/leads", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert await query("SELECT id FROM leads") == []


async def test_honeypot_answers_as_success_and_stores_flagged(client, lead, query) -> None:
    response = await post(client, lead(website="http://spam.example"))
    assert response.status_code == 201
    assert response.json()["status"] == "received"
    rows = await query("SELECT spam, spam_reason FROM leads")
    assert rows == [{"spam": True, "spam_reason": "honeypot"}]


async def test_idempotency_key_replays_the_first_answer(client, lead, query: Query) -> None:
    body = lead()
    first = await post(client, body, headers={"Idempotency-Key": "abc-123"})
    again = await post(client, body, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert len(await query("SELECT id FROM leads")) == 1


async def test_concurrent_requests_with_one_key_create_one_lead(client, lead, query) -> None:
    body = lead()
    responses = await asyncio.gather(
        *(post(client, body, headers={"Idempotency-Key": "same"}) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await query("SELECT id FROM leads")) == 1


async def test_an_unusable_idempotency_key_is_400(client, lead) -> None:
    response = await post(client, lead(), headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 400


async def test_returning_visitor_adds_an_enquiry_to_their_open_lead(
    client, lead, query, lead_of
) -> None:
    first = await post(client, lead(email="jo@example.com", message="first"))
    second = await post(client, lead(email="JO@example.com", message="second"))
    assert await lead_of(first.json()["id"]) == await lead_of(second.json()["id"])
    leads = await query("SELECT email, enquiry_count, message FROM leads")
    assert leads == [{"email": "jo@example.com", "enquiry_count": 2, "message": "first"}]
    enquiries = await query("SELECT message FROM enquiries")
    assert enquiries == [{"message": "second"}]


async def test_returning_by_phone_and_only_while_new(client, lead, query: Query, lead_of) -> None:
    first = await post(client, lead(email=None, phone="202-555-0143"))
    again = await post(client, lead(email=None, phone="+1 202 555 0143"))
    assert await lead_of(first.json()["id"]) == await lead_of(again.json()["id"])
    await query("UPDATE leads SET status = 'contacted'")
    later = await post(client, lead(email=None, phone="+12025550143"))
    assert await lead_of(later.json()["id"]) != await lead_of(first.json()["id"])


async def test_locked_sqlite_is_503_then_recovers(tmp_path, lead) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}"
    settings = make_settings(url, database_timeout_seconds=0.3)
    await migrate(settings)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            response = await post(client, lead())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "storage_unavailable"
        assert int(response.headers["retry-after"]) > 0
        assert (await post(client, lead())).status_code == 201


@pytest.mark.postgres
async def test_postgres_refusing_connections_is_503(postgres_url, lead) -> None:
    settings = make_settings(postgres_url, database_timeout_seconds=1)
    await migrate(settings)
    app = create_app(settings)
    name = postgres_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await post(client, lead())).status_code == 201
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        try:
            response = await post(client, lead())
            ready = await client.get("/readyz")
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        assert response.status_code == 503
        assert response.json()["code"] == "storage_unavailable"
        assert ready.status_code == 503
        assert (await post(client, lead())).status_code == 201


async def test_health_endpoints(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200


async def test_a_bug_is_a_500_problem_and_its_text_stays_out_of_the_logs(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'bug.db'}")
    await migrate(settings)
    app = create_app(settings)

    async def broken(request):
        raise RuntimeError("secret: jane@example.com")

    app.add_route("/api/broken", broken, methods=["POST"])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        ) as client,
    ):
        response = await client.post("/api/broken")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "internal_error"
    assert "jane@example.com" not in response.text
    assert any("unexpected RuntimeError" in r.getMessage() for r in caplog.records)
    assert all("jane@example.com" not in r.getMessage() for r in caplog.records)
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_lone_surrogate_in_a_field_name_is_a_422_not_a_500(client) -> None:
    raw = '{"\\ud800": 1, "name": "Ann", "email": "a@example.com", "consent": true}'
    response = await client.post(
        "/api/leads", content=raw, headers={"content-type": "application/json"}
    )
    assert errors_of(response) == {"\\ud800": "unknown_field"}


async def test_a_405_names_every_method_of_its_path(client) -> None:
    # Starlette's own 405 names only the first route of a path that has one per method.
    staff = await client.request("OPTIONS", "/api/staff/leads/7d1c1a4e-3f0e-4a57-9b6b-1f2e3d4c5b6a")
    assert staff.status_code == 405
    assert staff.headers["content-type"] == "application/problem+json"
    assert set(staff.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
    form = await client.delete("/f/dry-needling")
    assert set(form.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    leads = await client.get("/api/leads")
    assert leads.headers["allow"] == "POST"
