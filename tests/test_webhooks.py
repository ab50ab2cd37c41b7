"""Signed webhooks, end to end: POST a lead to the running app, and a real HTTP server on
loopback receives it; each delivery is checked with the `standardwebhooks` package, as a
receiver would. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import LeadOf, Query
from tests.receivers import Delivery, Receiver, webhook_receiver
from tests.support import leads_cli

# -- a real receiver ---------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


# -- helpers -----------------------------------------------------------------------------

WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_settings(receiver: Receiver, *paths: str) -> dict[str, Any]:
    return {
        "webhook_urls": ",".join(receiver.url(p) for p in paths or ("/a", "/b")),
        "webhook_secret": WEBHOOK_SECRET,
        "retry_base_seconds": 0.05,
        "rate_limit": "off",
        "public_url": "https://leads.clinic.example",
    }


def verify(delivery: Delivery) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(WEBHOOK_SECRET).verify(delivery.body, delivery.headers)
    return payload


async def submit(client: httpx.AsyncClient, body: dict[str, Any], lead_of: LeadOf) -> str:
    """Submit a lead; the id of the lead it is under (the answer is the submission's receipt)."""
    response = await client.post("/api/leads", json=body)
    assert response.status_code == 201, response.text
    return await lead_of(response.json()["id"])


async def messages(query: Query) -> list[dict[str, Any]]:
    rows = await query(
        "SELECT id, lead_id, kind, target, status, attempts, last_error FROM outbox"
        " ORDER BY created_at"
    )
    for row in rows:
        row["id"] = str(uuid.UUID(str(row["id"])))
        row["lead_id"] = str(uuid.UUID(str(row["lead_id"])))
    return rows


async def settled(query: Query, count: int, within: float = 30) -> list[dict[str, Any]]:
    """Poll until ``count`` messages exist and none is pending any more."""
    deadline = time.monotonic() + within
    while True:
        rows = await messages(query)
        if len(rows) >= count and all(r["status"] != "pending" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"outbox not settled after {within} s: {rows}")
        await asyncio.sleep(0.02)


def message_to(rows: list[dict[str, Any]], url: str, lead_id: str) -> dict[str, Any]:
    (row,) = [r for r in rows if r["target"] == url and r["lead_id"] == lead_id]
    return row


async def operator_retry(database_url: str, *ids: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(leads_cli, database_url, "outbox", "retry", *ids)


DATA_FIELDS = {
    "id", "url", "form", "form_title", "status", "created_at", "name", "email", "phone",
    "preferred_contact", "interest", "message", "enquiry_count", "attribution", "enquiry_id",
    "duplicate_of",
}  # fmt: skip


# -- the tests ---------------------------------------------------------------------------


async def test_every_url_receives_every_lead_signed(
    make_client, receiver, lead, query, lead_of
) -> None:
    client = await make_client(**webhook_settings(receiver))
    first = lead(
        name="Ann Smith",
        phone="(202) 555-0143",
        preferred_contact="phone",
        interest="Lower back pain",
        message="Ça fait mal <b>ici</b>",
        utm_source="newsletter",
        page_url="https://clinic.example/dry-needling",
    )
    ids = [
        await submit(client, first, lead_of),
        await submit(client, lead(name="Bo Chen"), lead_of),
    ]
    rows = await settled(query, 4)

    assert {r["status"] for r in rows} == {"delivered"}
    assert {r["attempts"] for r in rows} == {1}
    assert len(receiver.deliveries) == 4
    for path in ("/a", "/b"):
        url = receiver.url(path)
        deliveries = receiver.to(path)
        payloads = [verify(d) for d in deliveries]
        assert sorted(p["data"]["id"] for p in payloads) == sorted(ids)
        for delivery, payload in zip(deliveries, payloads, strict=True):
            lead_id = payload["data"]["id"]
            assert delivery.method == "POST"
            assert delivery.headers["content-type"] == "application/json"
            assert delivery.headers["user-agent"].startswith("leads/")
            assert delivery.headers["webhook-id"] == message_to(rows, url, lead_id)["id"]
            assert abs(int(delivery.headers["webhook-timestamp"]) - delivery.at) < 5
            assert payload["type"] == "lead.created"
            assert set(payload["data"]) == DATA_FIELDS
            assert payload["data"]["url"] == f"https://leads.clinic.example/staff/leads/{lead_id}"
            assert payload["timestamp"] == payload["data"]["created_at"]
            assert payload["timestamp"].endswith("Z")

    (ann,) = [p["data"] for p in map(verify, receiver.to("/a")) if p["data"]["id"] == ids[0]]
    receipts = await query("SELECT id, receipt_id FROM leads")
    (receipt,) = [r["receipt_id"] for r in receipts if str(uuid.UUID(str(r["id"]))) == ids[0]]
    assert ann["enquiry_id"] == str(uuid.UUID(str(receipt)))  # what Ann was told
    assert ann == {
        "id": ids[0],
        "enquiry_id": ann["enquiry_id"],
        "duplicate_of": None,
        "url": f"https://leads.clinic.example/staff/leads/{ids[0]}",
        "form": "dry-needling",
        "form_title": "Learn more about dry needling",
        "status": "new",
        "created_at": ann["created_at"],
        "name": "Ann Smith",
        "email": first["email"],
        "phone": "+12025550143",
        "preferred_contact": "phone",
        "interest": "Lower back pain",
        "message": "Ça fait mal <b>ici</b>",
        "enquiry_count": 1,
        "attribution": {
            "page_url": "https://clinic.example/dry-needling",
            "referrer": None,
            "utm_source": "newsletter",
            "utm_medium": None,
            "utm_campaign": None,
            "utm_term": None,
            "utm_content": None,
        },
    }
    # Each URL has its own message, so its own webhook-id.
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 4


async def test_a_tampered_or_wrongly_signed_delivery_fails_verification(
    make_client, receiver, lead, query, lead_of
) -> None:
    client = await make_client(**webhook_settings(receiver, "/a"))
    await submit(client, lead(message="Please call after 5pm"), lead_of)
    await settled(query, 1)
    (delivery,) = receiver.deliveries
    assert verify(delivery)["type"] == "lead.created"

    tampered = delivery.body.replace(b"after 5pm", b"after 6pm")
    assert tampered != delivery.body
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(tampered, delivery.headers)
    other_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(delivery.body, delivery.headers)
    replayed_elsewhere = {**delivery.headers, "webhook-id": str(uuid.uuid4())}
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(delivery.body, replayed_elsewhere)


async def test_a_returning_visitor_sends_enquiry_added(
    make_client, receiver, lead, query, lead_of
) -> None:
    client = await make_client(**webhook_settings(receiver, "/a"))
    first = await submit(client, lead(email="jo@example.com", message="first"), lead_of)
    again = await submit(
        client, lead(email="JO@example.com", message="second", interest="Headaches"), lead_of
    )
    assert again == first
    rows = await settled(query, 2)
    assert [r["kind"] for r in rows] == ["lead.created", "lead.enquiry_added"]

    # Both can be claimed together and delivered concurrently: arrival order is not fixed.
    by_type = {payload["type"]: payload for payload in map(verify, receiver.to("/a"))}
    created, added = by_type["lead.created"], by_type["lead.enquiry_added"]
    assert "enquiry" not in created["data"]
    assert added["type"] == "lead.enquiry_added"
    assert added["data"]["id"] == first
    assert added["data"]["enquiry_count"] == 2
    assert added["data"]["message"] == "first"
    enquiry = added["data"]["enquiry"]
    assert set(enquiry) == {
        "id", "created_at", "name", "email", "phone", "form", "interest", "message",
        "preferred_contact",
    }  # fmt: skip
    assert (enquiry["message"], enquiry["interest"]) == ("second", "Headaches")
    assert added["timestamp"] == enquiry["created_at"]
    enquiries = await query("SELECT id FROM enquiries")
    assert [str(uuid.UUID(str(e["id"]))) for e in enquiries] == [enquiry["id"]]
    assert added["data"]["enquiry_id"] == enquiry["id"]  # this submission's receipt


async def test_a_failed_delivery_is_repeated_with_the_same_id_freshly_signed(
    make_client, receiver, lead, query, lead_of
) -> None:
    receiver.script["/a"] = [500, 200]
    client = await make_client(**webhook_settings(receiver))
    lead_id = await submit(client, lead(), lead_of)
    rows = await settled(query, 2)

    row = message_to(rows, receiver.url("/a"), lead_id)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "delivered",
        2,
        "webhook: HTTP 500",
    )
    first, repeat = receiver.to("/a")
    assert first.headers["webhook-id"] == repeat.headers["webhook-id"] == row["id"]
    assert first.body == repeat.body
    for delivery in (first, repeat):
        # Signed at the moment of sending, so it passes a receiver's freshness check.
        assert abs(int(delivery.headers["webhook-timestamp"]) - delivery.at) < 2
        assert verify(delivery)["data"]["id"] == lead_id
    if first.headers["webhook-timestamp"] != repeat.headers["webhook-timestamp"]:
        assert first.headers["webhook-signature"] != repeat.headers["webhook-signature"]
    assert len(receiver.to("/b")) == 1


@pytest.mark.parametrize(
    ("status", "error"), [(400, "webhook: HTTP 400"), (302, "webhook: HTTP 302")]
)
async def test_a_refusal_or_redirect_is_a_dead_letter_at_once(
    make_client, receiver, lead, query, status, error, lead_of
) -> None:
    receiver.script["/a"] = [status]
    client = await make_client(**webhook_settings(receiver))
    lead_id = await submit(client, lead(), lead_of)
    rows = await settled(query, 2)

    row = message_to(rows, receiver.url("/a"), lead_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 1, error)
    assert message_to(rows, receiver.url("/b"), lead_id)["status"] == "delivered"
    assert len(receiver.to("/a")) == 1
    assert receiver.to("/elsewhere") == []  # a redirect is not followed


async def test_410_switches_the_endpoint_off_until_an_operator_retries(
    make_client, receiver, lead, query, database_url, caplog, lead_of
) -> None:
    receiver.script["/a"] = [410]
    gone = receiver.url("/a")
    client = await make_client(**webhook_settings(receiver))
    with caplog.at_level(logging.INFO, logger="leads.notify"):
        first = await submit(client, lead(), lead_of)
        rows = await settled(query, 2)

    row = message_to(rows, gone, first)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "dead",
        1,
        "webhook: HTTP 410 Gone",
    )
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR and gone in r.getMessage()]
    assert len(loud) == 1, [r.getMessage() for r in caplog.records]
    disabled = await query("SELECT url, reason FROM disabled_webhooks")
    assert disabled == [{"url": gone, "reason": "webhook: HTTP 410 Gone"}]

    # The next lead: the other URL still gets it; the switched-off one is not even called.
    second = await submit(client, lead(), lead_of)
    rows = await settled(query, 4)
    row = message_to(rows, gone, second)
    assert (row["status"], row["attempts"]) == ("dead", 1)
    assert "410" in row["last_error"]
    assert message_to(rows, receiver.url("/b"), second)["status"] == "delivered"
    assert len(receiver.to("/a")) == 1

    # The operator retries one of its messages: the URL is switched on again and delivered to.
    done = await operator_retry(database_url, row["id"])
    assert done.returncode == 0, done.stderr
    assert await query("SELECT url FROM disabled_webhooks") == []
    deadline = time.monotonic() + 10
    while message_to(await messages(query), gone, second)["status"] != "delivered":
        assert time.monotonic() < deadline, await messages(query)
        await asyncio.sleep(0.02)
    _, again = receiver.to("/a")
    assert again.headers["webhook-id"] == row["id"]
    assert verify(again)["data"]["id"] == second
    assert message_to(await messages(query), gone, first)["status"] == "dead"


async def test_a_honeypot_lead_sends_no_webhook(
    make_client, receiver, lead, query, lead_of
) -> None:
    client = await make_client(**webhook_settings(receiver))
    spam = await submit(client, lead(website="http://spam.example"), lead_of)
    real = await submit(client, lead(), lead_of)
    # The real lead's deliveries prove the dispatcher ran; the spam lead's never went out.
    deadline = time.monotonic() + 10
    while len(receiver.deliveries) < 2:
        assert time.monotonic() < deadline, receiver.deliveries
        await asyncio.sleep(0.02)
    rows = await settled(query, 2)  # received, and (a moment later) recorded
    assert {(r["lead_id"], r["status"]) for r in rows} == {(real, "delivered")}
    assert spam not in {r["lead_id"] for r in rows}  # nothing was even queued for it
    assert len(rows) == 2
    assert {verify(d)["data"]["id"] for d in receiver.deliveries} == {real}
    assert len(receiver.deliveries) == 2


async def test_two_messages_meeting_410_at_once_are_both_dead_letters(
    make_client, receiver, lead, query, database_url, request, lead_of
) -> None:
    """Both deliveries are in flight when the endpoint answers 410 to each: both record the
    URL as switched off at the same moment."""
    receiver.script["/a"] = [410, 410]
    receiver.together["/a"] = 2
    client = await make_client(**webhook_settings(receiver, "/a"))
    await asyncio.gather(submit(client, lead(), lead_of), submit(client, lead(), lead_of))
    rows = await settled(query, 2, within=20)  # < the 31 s lease a regression would wait out
    assert [(r["status"], r["attempts"]) for r in rows] == [("dead", 1), ("dead", 1)]
    assert await query("SELECT url FROM disabled_webhooks") == [{"url": receiver.url("/a")}]


async def test_notify_test_signs_a_test_to_each_url_and_reports_each(
    receiver, database_url: str
) -> None:
    receiver.script["/b"] = [500]
    webhooks = {
        "LEADS_WEBHOOK_URLS": f"{receiver.url('/a?token=t0ps3cret')},{receiver.url('/b')}",
        "LEADS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    done = await asyncio.to_thread(leads_cli, database_url, "notify-test", **webhooks)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        f"webhook {receiver.url('/a')}?...: delivered",
        f"webhook {receiver.url('/b')}: FAILED (webhook: HTTP 500; would retry)",
    ]
    (test,) = [d for d in receiver.deliveries if d.path.startswith("/a")]
    payload = verify(test)
    assert payload["type"] == "test"
    assert payload["data"] == {}
    assert test.headers["webhook-id"].startswith("test-")
