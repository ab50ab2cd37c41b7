"""Logs never hold what people typed: a real `leads serve` at LEADS_LOG_LEVEL=debug, in both
formats, is sent unique markers in every field of every kind of submission (valid, invalid,
spam, honeypot, too large, not UTF-8, by the API and the hosted form), in staff notes and
changes, in sign-ins with wrong passwords, in bad tokens, and in deliveries an SMTP server
refuses quoting the address; then all of its output, and `leads outbox list`'s, is searched
for every marker."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET
from tests.mail import INBOX, mail_server
from tests.servers import Service, leads_process
from tests.support import eventually, leads_cli, leads_env

pytestmark = pytest.mark.slow

STAFF = "privacy-admin@clinic.example"
STAFF_PASSWORD = "correct horse battery staple"


class Markers:
    """Unique strings, one per planted value, remembered so they can all be looked for."""

    def __init__(self) -> None:
        self.planted: list[str] = []

    def text(self, what: str) -> str:
        marker = f"mk{what}{secrets.token_hex(5)}"
        self.planted.append(marker)
        return marker

    def email(self, what: str) -> str:
        local = self.text(what)
        return f"{local}@example.com"

    def phone(self) -> str:
        """A US number (valid in the default region) whose digits appear nowhere else."""
        digits = f"202555{secrets.randbelow(10000):04d}"
        self.planted.extend([digits, f"+1{digits}"])
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"

    def found_in(self, output: str) -> list[str]:
        return [marker for marker in self.planted if marker in output]


def person(markers: Markers, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"{markers.text(kind + 'name')} {markers.text(kind + 'surname')}",
        "email": markers.email(kind + "email"),
        "phone": markers.phone(),
        "message": f"my knee {markers.text(kind + 'message')} hurts",
        "preferred_contact": "phone",
        "consent": True,
        "utm_campaign": markers.text(kind + "utm"),
        **extra,
    }


def submit_everything(base: str, markers: Markers) -> list[str]:
    """Every kind of submission, with markers in every field; the receipts of the stored."""
    receipts: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        valid = client.post("/api/leads", json=person(markers, "valid"))
        assert valid.status_code == 201, valid.text
        receipts.append(valid.json()["id"])
        keyed = client.post(
            "/api/leads",
            json=person(markers, "keyed"),
            headers={"Idempotency-Key": markers.text("idemkey")},
        )
        assert keyed.status_code == 201, keyed.text

        invalid = person(markers, "invalid", consent=False)
        invalid["email"] = markers.text("bademail")  # not an address
        invalid["phone"] = markers.text("badphone")
        invalid["preferred_contact"] = markers.text("badcontact")
        invalid["interest"] = markers.text("badinterest")
        answer = client.post("/api/leads", json=invalid)
        assert answer.status_code == 422, answer.text

        spam = person(markers, "spam")
        spam["message"] += " " + " ".join(
            f"https://x{i}.example/{markers.text('link')}" for i in range(6)
        )
        assert client.post("/api/leads", json=spam).status_code in (201, 202)

        honeypot = person(markers, "honeypot", website=markers.text("website"))
        assert client.post("/api/leads", json=honeypot).status_code in (201, 202)

        huge = person(markers, "huge")
        huge["message"] = markers.text("hugemessage") + "x" * 40000
        assert client.post("/api/leads", json=huge).status_code == 413

        broken = json.dumps(person(markers, "utf8")).encode().replace(b"my knee", b"my \xff\xfe")
        answer = client.post(
            "/api/leads", content=broken, headers={"Content-Type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, answer.text

        form = person(markers, "form")
        form["consent"] = "on"
        page = client.post("/f/dry-needling", data=form)
        assert page.status_code in (200, 303, 422), page.text
        broken_form = f"name={markers.text('formutf8')}%FF%FE&email=a@b".encode() + b"\xff"
        page = client.post(
            "/f/dry-needling",
            content=broken_form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert 400 <= page.status_code < 500
    return receipts


def staff_everything(base: str, markers: Markers, token: str) -> None:
    """Signing in wrongly, bad tokens, notes and changes through the staff API."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for email, password in (
            (markers.email("loginemail"), markers.text("loginpassword")),
            (STAFF, markers.text("wrongpassword")),
        ):
            page = client.get("/staff/login")
            login_token = re.search(r'name="login_token" value="([^"]*)"', page.text)
            assert login_token is not None
            refused = client.post(
                "/staff/login",
                data={"login_token": login_token.group(1), "email": email, "password": password},
            )
            assert refused.status_code in (200, 401, 403), refused.status_code
        bad = client.get(
            "/api/staff/leads", headers={"Authorization": f"Bearer {markers.text('badtoken')}"}
        )
        assert bad.status_code == 401

        write = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/staff/leads", headers=write)
        assert listed.status_code == 200, listed.text
        lead_id = listed.json()["items"][0]["id"]
        path = f"/api/staff/leads/{lead_id}"
        note = client.post(f"{path}/notes", json={"text": markers.text("note")}, headers=write)
        assert note.status_code == 201, note.text
        for change in (
            {"status": markers.text("patchstatus")},
            {"assigned_to": markers.email("patchassignee")},
            {markers.text("patchfield"): markers.text("patchvalue")},
        ):
            answer = client.patch(path, json=change, headers={**write, "If-Match": '"1"'})
            assert 400 <= answer.status_code < 500, answer.text
        changed = client.patch(
            path, json={"status": "contacted"}, headers={**write, "If-Match": markers.text("etag")}
        )
        assert changed.status_code in (409, 412, 428), changed.text


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_marker_reaches_the_log(tmp_path: Path, log_format: str) -> None:
    markers = Markers()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}"
    with mail_server() as smtp:
        # Refusals that quote the address, as some servers do: the error kept is the code.
        smtp.script = [
            f"550 5.1.1 <{markers.email('refused')}>: Recipient address rejected: "
            f"{markers.text('smtpsays')}"
        ] * 3
        env = leads_env(
            database_url=database_url,
            secret_key=SECRET,
            rate_limit="off",
            tarpit_seconds="0",
            min_fill_seconds="0",
            log_level="debug",
            log_format=log_format,
            smtp_url=f"smtp://127.0.0.1:{smtp.port}?starttls=off",
            inbox=INBOX,
            autoreply="true",
            max_body_bytes="16384",
            retry_base_seconds="0.05",
        )
        assert leads_cli(database_url, "migrate").returncode == 0
        added = leads_cli(
            database_url, "user", "add", STAFF, "--role", "admin", stdin=STAFF_PASSWORD + "\n"
        )
        assert added.returncode == 0, added.stderr
        made = leads_cli(database_url, "token", "create", "--name", "privacy", "--scope", "write")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]
        with leads_process(env) as service:
            submit_everything(service.url, markers)
            staff_everything(service.url, markers, token)
            smtp.wait_for(1)  # deliveries have been tried, some refused
            settle(service)
            output = service.output()
        listed = leads_cli(database_url, "outbox", "list")
    assert listed.returncode == 0, listed.stderr
    assert "dead" in listed.stdout  # the refusals were recorded...
    assert "SMTP 550" in listed.stdout  # ...by their code
    for where, text in (
        ("the server's log", output),
        ("leads outbox list", listed.stdout + listed.stderr),
    ):
        assert markers.found_in(text) == [], f"{where} holds personal data"
        assert token not in text
        assert STAFF_PASSWORD not in text
    request_line = '"event": "request"' if log_format == "json" else " status=201 "
    assert request_line in output  # the log was written, in the format asked for


def settle(service: Service) -> None:
    """Until the server has logged a dead letter (the refusals above)."""

    async def dead() -> bool:
        return "dead letter" in service.output()

    asyncio.run(eventually(dead, what="a dead letter in the log"))
