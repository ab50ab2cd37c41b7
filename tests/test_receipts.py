"""Receipts, merges and idempotency: what a visitor's answer may reveal, who may join a
lead, and what an Idempotency-Key replays. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import LeadOf, Query

PROBLEM = "application/problem+json"


async def post(client: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
    response = await client.post("/api/leads", json=body, **kw)
    return response


def same(a: Any, b: Any) -> bool:
    return uuid.UUID(str(a)) == uuid.UUID(str(b))


async def test_every_submission_gets_a_receipt_of_its_own(
    client, lead, query: Query, lead_of: LeadOf
) -> None:
    first = await post(client, lead(email="jo@example.com", message="first"))
    second = await post(client, lead(email="jo@example.com", message="second"))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    # One lead holds both; neither answer was its id.
    (row,) = await query("SELECT id, receipt_id, enquiry_count FROM leads")
    assert row["enquiry_count"] == 2
    assert same(row["receipt_id"], first.json()["id"])
    assert not same(row["id"], first.json()["id"])
    (enquiry,) = await query("SELECT id FROM enquiries")
    assert same(enquiry["id"], second.json()["id"])
    assert await lead_of(first.json()["id"]) == await lead_of(second.json()["id"])


async def test_answers_do_not_tell_whether_someone_enquired(client, lead) -> None:
    """Sending someone's email, then their phone, used to return the same id only when that
    person had enquired: an oracle for "did X contact the clinic?"."""
    victim = await post(client, lead(email="vic@example.com", phone="+12025550143"))
    by_email = await post(client, lead(email="vic@example.com"))
    by_phone = await post(client, {**lead(phone="+12025550143"), "email": None})
    nobody_email = await post(client, lead(email="nobody@example.com"))
    nobody_phone = await post(client, {**lead(phone="+12025550199"), "email": None})
    answers = [victim, by_email, by_phone, nobody_email, nobody_phone]
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == len(answers)
    assert {tuple(sorted(r.json())) for r in answers} == {("id", "status")}


async def test_a_stranger_cannot_attach_themselves_to_someone_elses_lead(
    client, lead, query: Query, lead_of: LeadOf
) -> None:
    victim = await post(client, lead(email="vic@example.com", message="My knee hurts"))
    stranger = await post(
        client,
        lead(email="VIC@example.com", phone="+12025550143", preferred_contact="text", message="hi"),
    )
    stranger_again = await post(client, {**lead(phone="+12025550143"), "email": None})
    victim_lead = await lead_of(victim.json()["id"])
    stranger_lead = await lead_of(stranger.json()["id"])
    assert stranger_lead != victim_lead
    assert await lead_of(stranger_again.json()["id"]) == stranger_lead

    rows = {
        str(uuid.UUID(str(r["id"]))): r
        for r in await query(
            "SELECT id, phone, preferred_contact, enquiry_count, duplicate_of, message FROM leads"
        )
    }
    assert rows[victim_lead]["phone"] is None
    assert rows[victim_lead]["preferred_contact"] is None
    assert rows[victim_lead]["enquiry_count"] == 1
    assert rows[victim_lead]["duplicate_of"] is None
    # Marked as a possible duplicate, for staff to judge.
    assert same(rows[stranger_lead]["duplicate_of"], victim_lead)
    assert rows[stranger_lead]["enquiry_count"] == 2
    # No follow-up about the victim's lead was announced with the stranger's details.
    kinds = await query("SELECT lead_id, kind FROM outbox")
    assert {k["kind"] for k in kinds if same(k["lead_id"], victim_lead)} == {"lead.created"}


async def test_a_returning_visitor_joins_when_their_details_agree(
    client, lead, query: Query, lead_of: LeadOf
) -> None:
    first = await post(
        client, lead(email="ann@example.com", phone="+12025550143", preferred_contact="phone")
    )
    by_email = await post(client, lead(email="Ann@Example.com", preferred_contact="email"))
    by_phone = await post(client, {**lead(phone="(202) 555-0143"), "email": None})
    both = await post(client, lead(email="ann@example.com", phone="+12025550143"))
    ids = {await lead_of(r.json()["id"]) for r in (first, by_email, by_phone, both)}
    assert len(ids) == 1
    (row,) = await query("SELECT email, phone, preferred_contact, enquiry_count FROM leads")
    # The lead keeps its own details; each enquiry keeps what its sender wrote.
    assert row == {
        "email": "ann@example.com",
        "phone": "+12025550143",
        "preferred_contact": "phone",
        "enquiry_count": 4,
    }
    prefs = await query("SELECT preferred_contact FROM enquiries ORDER BY created_at")
    assert [p["preferred_contact"] for p in prefs] == ["email", None, None]


async def test_a_new_detail_makes_a_possible_duplicate_not_a_change(
    client, lead, query: Query, lead_of: LeadOf
) -> None:
    """Email only first, then the same email with a phone: the lead had no phone, so the
    phone is "another" one. It is not added to the first lead."""
    first = await post(client, lead(email="bo@example.com"))
    second = await post(client, lead(email="bo@example.com", phone="+12025550143"))
    a, b = await lead_of(first.json()["id"]), await lead_of(second.json()["id"])
    assert a != b
    rows = await query("SELECT phone, duplicate_of FROM leads ORDER BY created_at")
    assert rows[0] == {"phone": None, "duplicate_of": None}
    assert rows[1]["phone"] == "+12025550143"
    assert same(rows[1]["duplicate_of"], a)


async def test_many_leads_sharing_a_phone_still_match_by_the_newest(
    client, lead, query: Query, lead_of: LeadOf
) -> None:
    """Fifteen people (or one flood) give the same phone with their own emails: fifteen
    leads. A batch considers only the newest few of them (not every one, each time), so a
    phone-only visitor joins the newest, and the same email again joins its own lead."""
    phone = "+12025550143"
    firsts = [await post(client, lead(email=f"p{i}@example.com", phone=phone)) for i in range(15)]
    leads_made = [await lead_of(r.json()["id"]) for r in firsts]
    assert len(set(leads_made)) == 15
    by_phone = await post(client, {**lead(phone=phone), "email": None})
    again = await post(client, lead(email="p0@example.com", phone=phone))
    assert await lead_of(by_phone.json()["id"]) == leads_made[-1]
    assert await lead_of(again.json()["id"]) == leads_made[0]
    (count,) = await query("SELECT COUNT(*) AS n FROM leads")
    assert count["n"] == 15


async def test_an_idempotency_key_replays_the_same_receipt(client, lead, query: Query) -> None:
    body = lead()
    first = await post(client, body, headers={"Idempotency-Key": "k-1"})
    again = await post(client, body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(await query("SELECT id FROM leads")) == 1


async def test_a_key_reused_with_another_body_is_422(client, lead, query: Query) -> None:
    body = lead(message="first")
    first = await post(client, body, headers={"Idempotency-Key": "k-2"})
    other = await post(client, {**body, "message": "second"}, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == 201
    assert other.status_code == 422
    assert other.headers["content-type"] == PROBLEM
    assert other.json()["code"] == "idempotency_key_reused"
    assert len(await query("SELECT id FROM leads")) == 1
    assert await query("SELECT id FROM enquiries") == []


async def test_a_key_is_scoped_to_the_client(make_client, lead, query: Query) -> None:
    """Another client's request with the same key is its own submission, never swallowed."""
    client = await make_client(trusted_proxies="203.0.113.7/32")
    one = {"Idempotency-Key": "shared", "X-Forwarded-For": "198.51.100.1"}
    two = {"Idempotency-Key": "shared", "X-Forwarded-For": "198.51.100.2"}
    site = {
        "Idempotency-Key": "shared",
        "X-Forwarded-For": "198.51.100.1",
        "Origin": "https://b.example",
    }
    a = await post(client, lead(), headers=one)
    b = await post(client, lead(), headers=two)
    c = await post(client, lead(), headers=site)
    assert [r.status_code for r in (a, b, c)] == [201, 201, 201]
    assert len({r.json()["id"] for r in (a, b, c)}) == 3
    assert not any("idempotent-replayed" in r.headers for r in (a, b, c))
    assert len(await query("SELECT id FROM leads")) == 3


async def test_the_origin_lock_comes_before_a_replay(make_client, lead) -> None:
    client = await make_client(allowed_origins="https://clinic.example")
    body = lead()
    good = {"Idempotency-Key": "k-3", "Origin": "https://clinic.example"}
    evil = {"Idempotency-Key": "k-3", "Origin": "https://evil.example"}
    assert (await post(client, body, headers=good)).status_code == 201
    refused = await post(client, body, headers=evil)
    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed"


async def test_spam_and_real_answers_look_alike(client, lead) -> None:
    """Sending the same thing twice gives two receipts, flagged or not."""
    real = lead(email="real@example.com")
    spam = lead(email="bot@example.com", website="http://spam.example")
    answers = [await post(client, body) for body in (real, real, spam, spam)]
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 4
    assert {tuple(sorted(r.json().items()))[1] for r in answers} == {("status", "received")}
