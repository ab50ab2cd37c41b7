"""The staff API on one lead, through HTTP, on SQLite and PostgreSQL: the lead and its
timeline, changes with If-Match, notes, release from spam, resending, merging, and the audit
rows each writes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from leads.core.vocabulary import TokenScope
from leads.staff.tokens import create_token
from leads.storage.database import Database
from leads.storage.staff_tables import User
from tests.conftest import LeadOf, Query, make_settings
from tests.support import outbox_rows

PROBLEM = "application/problem+json"


async def make_token(database_url: str, scope: TokenScope) -> dict[str, str]:
    database = Database.from_settings(make_settings(database_url))
    try:
        async with database.writing() as session:
            token = await create_token(
                session=session,
                name=f"{scope}-bot",
                scope=scope,
                actor="cli",
                now=datetime.now(UTC),
            )
    finally:
        await database.close()
    return {"Authorization": f"Bearer {token}"}


async def add_user(database_url: str, email: str, *, active: bool = True) -> None:
    database = Database.from_settings(make_settings(database_url))
    try:
        async with database.writing() as session:
            session.add(User(email=email, password_hash="x", active=active))
    finally:
        await database.close()


@pytest.fixture
async def write(client: httpx.AsyncClient, database_url: str) -> dict[str, str]:
    return await make_token(database_url, TokenScope.WRITE)  # `client` has migrated


async def submit(client: httpx.AsyncClient, lead: Any, lead_of: LeadOf, **fields: Any) -> str:
    response = await client.post("/api/leads", json=lead(**fields))
    assert response.status_code == 201, response.text
    return await lead_of(response.json()["id"])


def errors_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {e["field"]: e["code"] for e in response.json()["errors"]}


async def audit(query: Query) -> list[tuple[str, str]]:
    rows = await query("SELECT actor, action, detail FROM audit_log ORDER BY id")
    return [(row["actor"], row["action"]) for row in rows if row["action"] != "token_created"]


async def test_a_lead_has_the_export_fields_its_timeline_and_an_etag(
    client, write, lead, lead_of, query: Query
) -> None:
    email = "ann@example.com"
    lead_id = await submit(client, lead, lead_of, email=email, message="first")
    again = await client.post("/api/leads", json=lead(email=email, message="second"))
    assert again.status_code == 201
    await outbox_rows(query, until="delivered", count=2)

    response = await client.get(f"/api/staff/leads/{lead_id}", headers=write)
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    body = response.json()
    exported = ("id", "name", "email", "status", "enquiry_count", "enquiry_ids", "consent")
    for field in (*exported, "duplicate_of", "notifications", "enquiries"):
        assert field in body
    assert body["enquiry_count"] == 2
    assert body["assigned_to"] is None
    assert body["first_response_at"] is None
    assert body["merged_into"] is None
    assert body["possible_duplicates"] == []
    kinds = [(e["kind"], e.get("message") or e.get("status")) for e in body["timeline"]]
    assert kinds == [
        ("enquiry", "first"),
        ("notification", "delivered"),
        ("enquiry", "second"),
        ("notification", "delivered"),
    ]
    note = body["timeline"][1]
    assert note["actor"] == "system"
    assert note["channel"] == "log"
    assert note["message_kind"] == "lead.created"
    assert note["attempts"] == 1
    assert note["delivered_at"] is not None
    assert body["timeline"][0]["actor"] == "visitor"

    viewed = await query("SELECT actor, action, lead_id, address FROM audit_log")
    (entry,) = [row for row in viewed if row["action"] == "lead_viewed"]
    assert entry["actor"] == "token:write-bot"
    assert str(entry["lead_id"]).replace("-", "") == lead_id.replace("-", "")
    assert entry["address"] == "203.0.113.7"


async def test_changes_need_the_current_version_and_are_recorded(
    client, write, lead, lead_of, query: Query, database_url: str
) -> None:
    await add_user(database_url, "sam@clinic.example")
    await add_user(database_url, "gone@clinic.example", active=False)
    lead_id = await submit(client, lead, lead_of)
    path = f"/api/staff/leads/{lead_id}"

    changed = await client.patch(
        path,
        json={"status": "contacted", "assigned_to": "Sam@clinic.example"},
        headers={**write, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    body = changed.json()
    assert body["status"] == "contacted"
    assert body["assigned_to"] == "sam@clinic.example"
    first_response = body["first_response_at"]
    assert first_response is not None

    stale = await client.patch(
        path, json={"status": "booked"}, headers={**write, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    assert stale.json()["code"] == "precondition_failed"
    # Without If-Match the change is allowed; first_response_at stays where it was.
    booked = await client.patch(path, json={"status": "booked", "assigned_to": None}, headers=write)
    assert booked.status_code == 200
    assert booked.headers["etag"] == '"3"'
    assert booked.json()["first_response_at"] == first_response
    assert booked.json()["assigned_to"] is None
    back = await client.patch(path, json={"status": "new"}, headers=write)
    again = await client.patch(path, json={"status": "contacted"}, headers=write)
    assert back.status_code == again.status_code == 200
    assert again.json()["first_response_at"] == first_response

    timeline = (await client.get(path, headers=write)).json()["timeline"]
    steps = [
        (e["kind"], e.get("from"), e.get("to"))
        for e in timeline
        if e["kind"] in ("status", "assignment")
    ]
    assert steps == [
        ("status", "new", "contacted"),
        ("assignment", None, "sam@clinic.example"),
        ("status", "contacted", "booked"),
        ("assignment", "sam@clinic.example", None),
        ("status", "booked", "new"),
        ("status", "new", "contacted"),
    ]
    assert all(e["actor"] == "token:write-bot" for e in timeline if e["kind"] == "status")
    actions = [action for _actor, action in await audit(query)]
    assert actions.count("lead_changed") == 4

    assert errors_of(await client.patch(path, json={"status": "lost"}, headers=write)) == {
        "status": "invalid_choice"
    }
    assert errors_of(await client.patch(path, json={"name": "X"}, headers=write)) == {
        "name": "unknown_field"
    }
    for who, code in (
        ("nobody@clinic.example", "unknown_user"),
        ("gone@clinic.example", "inactive_user"),
        (42, "invalid_email"),
    ):
        answer = await client.patch(path, json={"assigned_to": who}, headers=write)
        assert errors_of(answer) == {"assigned_to": code}
    missing = await client.patch(f"/api/staff/leads/{uuid.uuid4()}", json={}, headers=write)
    assert missing.status_code == 404
    assert missing.json()["code"] == "lead_not_found"
    version = (await client.get(path, headers=write)).headers["etag"]
    assert version == '"5"'  # refusals changed nothing


async def test_notes_are_on_the_timeline_and_not_in_the_audit_log(
    client, write, lead, lead_of, query: Query
) -> None:
    lead_id = await submit(client, lead, lead_of)
    path = f"/api/staff/leads/{lead_id}/notes"
    made = await client.post(
        path, json={"text": "  Call back after 5pm\r\nprefers Tuesdays "}, headers=write
    )
    assert made.status_code == 201, made.text
    note = made.json()
    assert note["kind"] == "note"
    assert note["text"] == "Call back after 5pm\nprefers Tuesdays"
    assert note["actor"] == "token:write-bot"
    timeline = (await client.get(f"/api/staff/leads/{lead_id}", headers=write)).json()["timeline"]
    assert [e["text"] for e in timeline if e["kind"] == "note"] == [note["text"]]

    for text, code in (
        ("   ", "required"),
        ("x" * 5001, "too_long"),
        ("bell\x07", "control_characters"),
        (None, "invalid_type"),
    ):
        assert errors_of(await client.post(path, json={"text": text}, headers=write)) == {
            "text": code
        }
    assert (await client.post(path, json={"text": "x" * 5000}, headers=write)).status_code == 201

    rows = await query("SELECT action, detail FROM audit_log WHERE action = 'note_added'")
    assert len(rows) == 2
    assert "Call back" not in json.dumps(rows, default=str)


async def test_release_takes_a_lead_out_of_spam_and_sends_its_notification(
    client, write, lead, lead_of, query: Query
) -> None:
    spam = await submit(client, lead, lead_of, website="http://spam.example")
    real = await submit(client, lead, lead_of)
    await outbox_rows(query, until="delivered", count=1)

    not_spam = await client.post(f"/api/staff/leads/{real}/release", headers=write)
    assert not_spam.status_code == 409
    assert not_spam.headers["content-type"] == PROBLEM
    assert not_spam.json()["code"] == "not_spam"

    released = await client.post(f"/api/staff/leads/{spam}/release", headers=write)
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["spam"] is False
    assert body["status"] == "new"
    rows = await outbox_rows(query, until="delivered", count=2)
    assert len(rows) == 2  # the held notification, now sent
    assert any(e["kind"] == "released" for e in body["timeline"])
    assert ("token:write-bot", "lead_released") in await audit(query)
    again = await client.post(f"/api/staff/leads/{spam}/release", headers=write)
    assert again.status_code == 409


async def test_marking_spam_moves_a_lead_to_the_spam_folder_until_released(
    client, write, lead, lead_of
) -> None:
    lead_id = await submit(client, lead, lead_of)
    path = f"/api/staff/leads/{lead_id}"
    marked = await client.patch(path, json={"status": "spam"}, headers=write)
    assert marked.status_code == 200
    assert marked.json()["spam"] is True
    assert marked.json()["spam_reason"] == "marked by staff"
    listed = await client.get("/api/staff/leads", params={"spam": "true"}, headers=write)
    assert [item["id"] for item in listed.json()["items"]] == [lead_id]
    refused = await client.patch(path, json={"status": "contacted"}, headers=write)
    assert errors_of(refused) == {"status": "in_spam_folder"}
    released = await client.post(f"{path}/release", headers=write)
    assert released.json()["status"] == "new"
    assert released.json()["spam"] is False


async def test_resending_a_delivered_notification_queues_a_copy(
    client, write, lead, lead_of, query: Query
) -> None:
    lead_id = await submit(client, lead, lead_of)
    (first,) = await outbox_rows(query, until="delivered", count=1)
    message_id = uuid.UUID(str(first["id"]))
    path = f"/api/staff/leads/{lead_id}/messages/{message_id}/resend"
    resent = await client.post(path, headers=write)
    assert resent.status_code == 200, resent.text
    rows = await outbox_rows(query, until="delivered", count=2)
    assert [(r["kind"], r["channel"]) for r in rows] == [("lead.created", "log")] * 2
    entry = next(e for e in resent.json()["timeline"] if e["kind"] == "resent")
    assert entry["message_id"] == str(message_id)
    assert ("token:write-bot", "message_resent") in await audit(query)

    other = await submit(client, lead, lead_of)
    wrong_lead = await client.post(
        f"/api/staff/leads/{other}/messages/{message_id}/resend", headers=write
    )
    assert wrong_lead.status_code == 404
    assert wrong_lead.json()["code"] == "message_not_found"
    bad_id = await client.post(f"/api/staff/leads/{lead_id}/messages/x/resend", headers=write)
    assert bad_id.status_code == 404


async def test_merge_and_unmerge_are_recorded_on_both_leads(
    client, write, lead, lead_of, query: Query
) -> None:
    keep = await submit(client, lead, lead_of, email="ann@example.com", name="Ann")
    # Same email, other details: stored apart, as a possible duplicate.
    twin = await submit(client, lead, lead_of, email="ann@example.com", phone="+12025550143")
    kept = (await client.get(f"/api/staff/leads/{keep}", headers=write)).json()
    assert kept["possible_duplicates"] == [twin]

    merged = await client.post(f"/api/staff/leads/{twin}/merge", json={"into": keep}, headers=write)
    assert merged.status_code == 200, merged.text
    assert merged.json()["merged_into"] == keep
    listed = await client.get("/api/staff/leads", headers=write)
    assert [item["id"] for item in listed.json()["items"]] == [keep]
    kept = (await client.get(f"/api/staff/leads/{keep}", headers=write)).json()
    assert kept["merged_leads"] == [twin]
    assert [e["other"] for e in kept["timeline"] if e["kind"] == "merged"] == [twin]

    for body, code in (
        ({"into": keep}, "already_merged"),
        ({"into": "nope"}, "invalid_id"),
        ({"into": str(uuid.uuid4())}, "not_found"),
        ({"into": keep, "x": 1}, "unknown_field"),
    ):
        answer = await client.post(f"/api/staff/leads/{twin}/merge", json=body, headers=write)
        assert code in errors_of(answer).values()
    self_merge = await client.post(
        f"/api/staff/leads/{keep}/merge", json={"into": keep}, headers=write
    )
    assert errors_of(self_merge) == {"into": "same_lead"}

    unmerged = await client.post(f"/api/staff/leads/{twin}/unmerge", headers=write)
    assert unmerged.status_code == 200
    assert unmerged.json()["merged_into"] is None
    assert {e["kind"] for e in unmerged.json()["timeline"]} >= {"merged", "unmerged"}
    kept = (await client.get(f"/api/staff/leads/{keep}", headers=write)).json()
    assert [e["kind"] for e in kept["timeline"] if e["kind"] in ("merged", "unmerged")] == [
        "merged",
        "unmerged",
    ]
    not_merged = await client.post(f"/api/staff/leads/{twin}/unmerge", headers=write)
    assert not_merged.status_code == 409
    assert not_merged.json()["code"] == "not_merged"
    actions = [action for _actor, action in await audit(query)]
    assert actions.count("leads_merged") == 1
    assert actions.count("leads_unmerged") == 1
