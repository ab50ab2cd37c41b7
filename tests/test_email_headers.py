"""What a visitor types can never change an email's headers or structure: encoded words
(``=?charset?b?...?=``) arrive as the literal text typed, line breaks and controls are refused
at intake (or, if they get that far, cleaned by the header builder), and addresses are written
in ASCII, or in UTF-8 only to a server that offers SMTPUTF8.

Through the front door: the JSON API and the hosted form, an SMTP channel pointing at a real
aiosmtpd server, with the autoreply on, so both the clinic's email and the visitor's get
checked. Each received message is parsed back with the standard library's default policy.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from email import errors
from email.header import decode_header, make_header
from typing import Any

import httpx
import pytest

from tests.conftest import Query
from tests.mail import MailServer, Received, mail_server
from tests.support import outbox_rows

INBOX = "desk@clinic.example,owner@clinic.example"
MAIL_FROM = "Clinic leads <leads@clinic.example>"
TITLE = "Learn more about dry needling"
CLINIC_HEADERS = [
    "From", "To", "Subject", "Message-ID", "Date", "Reply-To", "X-Leads-Notification-Id",
    "MIME-Version", "Content-Type",
]  # fmt: skip
AUTOREPLY_HEADERS = [*CLINIC_HEADERS, "Auto-Submitted"]


def b64(text: str, charset: str = "utf-8") -> str:
    return base64.b64encode(text.encode(charset)).decode()


# Encoded words in b and q, in several charsets (one bogus), hiding line breaks, controls
# and headers. Each first word is short enough (40 characters) to reach the Subject whole.
ENCODED_NAMES = [
    "=?x?b?DQpSZXBseS1UbzogYUBldmlsLmlv?= Smith",
    "=?x?q?=0D=0A=0D=0AFAKE_BODY?=",
    f"=?utf-8?b?{b64(chr(13) + chr(10) + 'Bcc: x@evil.io')}?= Jones",
    "=?iso-8859-1?q?=0D=0ABcc:_x@evil.io?= Ann",
    f"=?latin1?B?{b64('Zoë' + chr(13) + chr(10) + 'Bcc: x@e.io', 'latin-1')}?=",
    "=?UTF-8?Q?=0D=0AX-Injected:_1?= =?utf-8?q?=E2=80=A8Bcc:_x?= Müller",
    "=?utf-8?q?=00=C2=85Bcc:_x@e.io?= Zoë",
    "=?utf-8?q?=E2=80=A8Bcc:_x@e.io?=",
]
ENCODED_MESSAGE = (
    "=?utf-8?q?=0D=0ABcc:_thief@evil.example?=\r\nBcc: thief@evil.example\r\n\r\nFAKE_BODY"
)


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with mail_server() as server:
        yield server


def settings_for(server: MailServer) -> dict[str, Any]:
    return {
        "smtp_url": f"smtp://127.0.0.1:{server.port}?starttls=off",
        "inbox": INBOX,
        "mail_from": MAIL_FROM,
        "autoreply": True,
        "retry_base_seconds": 0.05,
    }


def first_name(name: str) -> str:
    return name.split()[0][:40]


async def submit(client: httpx.AsyncClient, route: str, **fields: str) -> httpx.Response:
    if route == "api":
        return await client.post("/api/leads", json={"consent": True, **fields})
    return await client.post("/f/dry-needling", data={"consent": "true", **fields})


def accepted(route: str, response: httpx.Response) -> bool:
    return response.status_code == (201 if route == "api" else 303)


def assert_well_formed(mail: Received, headers: list[str], *, utf8: bool = False) -> None:
    """Exactly these headers, each once and without defects, and one body structure:
    multipart/alternative holding text/plain then text/html, nothing else."""
    message = mail.message
    assert sorted(message.keys()) == sorted(headers), message.keys()
    assert not message.defects
    # The standard library reads an RFC 6532 UTF-8 local part as a defect; only that may show.
    allowed = (errors.NonASCIILocalPartDefect, errors.UndecodableBytesDefect) if utf8 else ()
    assert all(isinstance(d, allowed) for name in headers for d in message[name].defects)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(not p.is_multipart() and not p.defects for p in parts)
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() is not utf8  # UTF-8 only in a message sent with SMTPUTF8
    assert ("SMTPUTF8" in mail.mail_options) is utf8
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line[:1] not in b" \t"]
    assert sorted(n.decode() for n in names) == sorted(headers)


def clinic_and_reply(mails: list[Received], visitor: str) -> tuple[Received, Received]:
    (reply,) = [m for m in mails if m.recipients == [visitor]]
    (clinic,) = [m for m in mails if m is not reply]
    return clinic, reply


@pytest.mark.parametrize("route", ["api", "form"])
@pytest.mark.parametrize("name", ENCODED_NAMES)
async def test_encoded_words_arrive_as_the_literal_text_typed(
    make_client, smtp, route: str, name: str
) -> None:
    client = await make_client(**settings_for(smtp))
    visitor = "ann.smith+tag@example.com"
    response = await submit(
        client,
        route,
        name=name,
        email=visitor,
        phone="2025550143",
        message=ENCODED_MESSAGE,
        interest="Lower back pain",
        utm_source="=?x?b?DQpCY2M6IHhAZXZpbC5leGFtcGxl?=",
        utm_campaign="=?utf-8?q?=0D=0AX-Injected:_1?=",
        page_url="https://clinic.example/?=?x?q?=0D=0AX:_1?=",
    )
    assert accepted(route, response), response.text
    clinic, reply = clinic_and_reply(await asyncio.to_thread(smtp.wait_for, 2), visitor)

    assert_well_formed(clinic, CLINIC_HEADERS)
    assert sorted(clinic.recipients) == ["desk@clinic.example", "owner@clinic.example"]
    assert clinic.message["Subject"] == f"New enquiry: {TITLE} from {first_name(name)}"
    assert clinic.message["From"] == MAIL_FROM
    assert clinic.message["To"] == "desk@clinic.example, owner@clinic.example"
    assert clinic.message["Reply-To"] == visitor
    text = clinic.part("plain").replace("\r\n", "\n")
    assert f"Name: {name}\n" in text
    assert ENCODED_MESSAGE.replace("\r\n", "\n") in text

    assert_well_formed(reply, AUTOREPLY_HEADERS)
    assert reply.message["Subject"] == f"We have your request: {TITLE}"
    assert reply.message["To"] == visitor
    assert reply.message["Reply-To"] == "desk@clinic.example"
    assert reply.message["Auto-Submitted"] == "auto-replied"
    assert reply.part("plain").startswith(f"Hello {first_name(name)},\r\n")


@pytest.mark.parametrize("route", ["api", "form"])
async def test_raw_line_breaks_and_controls_are_refused_at_intake(
    make_client, smtp, query: Query, route: str
) -> None:
    client = await make_client(**settings_for(smtp))
    for char in ["\r", "\n", "\r\n", "\0", "\x85", "\x1b"]:
        for field, value in [
            ("name", f"Ann{char}Bcc: thief@evil.example"),
            ("email", f"ann@example.com{char}Bcc: thief@evil.example"),
            ("email", f"ann{char}@example.com"),
        ]:
            fields = {"name": "Ann Smith", "email": "ann@example.com", field: value}
            response = await submit(client, route, **fields)
            assert response.status_code == 422, (field, char)
            if route == "api":
                assert field in {e["field"] for e in response.json()["errors"]}
    assert await query("SELECT id FROM leads") == []
    # Nothing in the outbox: there is nothing any dispatcher could ever send.
    assert await query("SELECT id FROM outbox") == []
    assert smtp.received == []


@pytest.mark.parametrize(
    ("char", "code"),
    [("\u2028", "control_characters"), ("\u2029", "control_characters"),
     ("\u202e", "bidi_controls"), ("\u200f", None)],
)  # fmt: skip
async def test_separators_and_bidi_controls_never_reach_a_header(
    make_client, smtp, query: Query, char: str, code: str | None
) -> None:
    """Refused in an address and in a name by the intake: line separators and bidi
    overrides. A right-to-left mark (U+200F) is allowed in a name, since
    right-to-left keyboards type it; the header builder drops it, and the message keeps its
    shape."""
    client = await make_client(**settings_for(smtp))
    bad = await submit(client, "api", name="Ann Smith", email=f"ann{char}@example.com")
    assert bad.status_code == 422
    expected = code or "invalid_email"  # a mark passes the text rules; the address rule refuses it
    assert {e["field"]: e["code"] for e in bad.json()["errors"]} == {"email": expected}

    name = f"Zoë{char}Bcc: x@evil.example"
    response = await submit(client, "api", name=name, email="zoe@example.com")
    if code is not None:
        assert response.status_code == 422
        assert {e["field"]: e["code"] for e in response.json()["errors"]} == {"name": code}
        assert await query("SELECT id FROM leads") == []
        return
    assert response.status_code == 201
    clinic, reply = clinic_and_reply(await asyncio.to_thread(smtp.wait_for, 2), "zoe@example.com")
    assert_well_formed(clinic, CLINIC_HEADERS)
    assert_well_formed(reply, AUTOREPLY_HEADERS)
    assert clinic.message["Subject"] == f"New enquiry: {TITLE} from ZoëBcc:"


@pytest.mark.parametrize("route", ["api", "form"])
@pytest.mark.parametrize(
    "address",
    [
        "=?x?b?DQpYLUluamVjdGVkLVZpYS1FbWFpbDogMQ==?=@example.com",
        "=?utf-8?q?ann?=@example.com",
        "ann=?x?q?=0D=0A?=@example.com",
    ],
)
async def test_an_address_holding_an_encoded_word_is_refused(
    make_client, smtp, query: Query, route: str, address: str
) -> None:
    client = await make_client(**settings_for(smtp))
    response = await submit(client, route, name="Ann Smith", email=address)
    assert response.status_code == 422
    if route == "api":
        errors = {e["field"]: e["code"] for e in response.json()["errors"]}
        assert errors == {"email": "invalid_email"}
    assert await query("SELECT id FROM leads") == []
    # A "=" or "?" alone is an ordinary character of an address.
    fine = await submit(client, route, name="Ann Smith", email="a=b?c@example.com")
    assert accepted(route, fine)
    mails = await asyncio.to_thread(smtp.wait_for, 2)
    assert sorted(m.message["To"] for m in mails)[0] == "a=b?c@example.com"


async def test_an_internationalised_domain_is_written_in_ascii(make_client, smtp) -> None:
    client = await make_client(**settings_for(smtp))
    response = await submit(client, "api", name="Ann Smith", email="ann@exämple.com")
    assert response.status_code == 201
    clinic, reply = clinic_and_reply(
        await asyncio.to_thread(smtp.wait_for, 2), "ann@xn--exmple-cua.com"
    )
    assert_well_formed(clinic, CLINIC_HEADERS)
    assert_well_formed(reply, AUTOREPLY_HEADERS)
    assert clinic.message["Reply-To"] == "ann@xn--exmple-cua.com"
    assert reply.message["To"] == "ann@xn--exmple-cua.com"
    assert "Email: ann@exämple.com" in clinic.part("plain")  # as the visitor typed it


async def test_a_non_ascii_local_part_without_smtputf8(make_client, smtp, query: Query) -> None:
    """The clinic is told, without a Reply-To (the address is in the body); the autoreply
    cannot be addressed, so it is a dead letter that says why."""
    client = await make_client(**settings_for(smtp))
    response = await submit(client, "api", name="Zoë Müller", email="zoë@exämple.com")
    assert response.status_code == 201
    (clinic,) = await asyncio.to_thread(smtp.wait_for, 1)
    rows = await outbox_rows(query, until="dead")
    assert_well_formed(clinic, [h for h in CLINIC_HEADERS if h != "Reply-To"])
    assert clinic.message["Subject"] == f"New enquiry: {TITLE} from Zoë"
    assert "Email: zoë@exämple.com" in clinic.part("plain")
    (dead,) = [r for r in rows if r["status"] == "dead"]
    assert dead["kind"] == "autoreply"
    assert dead["attempts"] == 1
    assert "SMTPUTF8" in dead["last_error"]
    assert "zoë" not in dead["last_error"]  # the reason never quotes the address
    # Every row has its outcome (a dead letter is never sent by itself): one email only.
    assert len(smtp.received) == 1


async def test_a_non_ascii_local_part_with_smtputf8(make_client, query: Query) -> None:
    with mail_server(smtputf8=True) as smtp:
        client = await make_client(**settings_for(smtp))
        response = await submit(client, "api", name="Zoë Müller", email="zoë@exämple.com")
        assert response.status_code == 201
        clinic, reply = clinic_and_reply(
            await asyncio.to_thread(smtp.wait_for, 2), "zoë@xn--exmple-cua.com"
        )
        await outbox_rows(query, until="delivered", count=2)
    assert_well_formed(clinic, CLINIC_HEADERS, utf8=True)
    assert_well_formed(reply, AUTOREPLY_HEADERS, utf8=True)
    assert clinic.message["Subject"] == f"New enquiry: {TITLE} from Zoë"
    assert clinic.message["Reply-To"] == "zoë@xn--exmple-cua.com"
    assert reply.message["To"] == "zoë@xn--exmple-cua.com"
    assert reply.message["Subject"] == f"We have your request: {TITLE}"


def display_name(mail: Received) -> str:
    """The From header's display name, decoded from the raw header as a mail program does."""
    head = mail.raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ")
    (line,) = [h for h in head.split("\r\n") if h.startswith("From: ")]
    phrase = line.removeprefix("From: ").rpartition(" <")[0]
    return str(make_header(decode_header(phrase)))


CLINIC_NAME = 'Zoë\'s "Physio" & <Co>, Ltd =?x?q?=0D=0ABcc:_x@e.io?='


async def test_the_clinic_name_is_the_from_display_name_and_signs_the_autoreply(
    make_client, smtp
) -> None:
    client = await make_client(
        **settings_for(smtp),
        clinic_name=CLINIC_NAME,
        clinic_phone="(202) 555-0123",
        clinic_url="https://clinic.example/",
    )
    visitor = "ann@example.com"
    response = await submit(client, "form", name="Ann Smith", email=visitor)
    assert accepted("form", response), response.text
    clinic, reply = clinic_and_reply(await asyncio.to_thread(smtp.wait_for, 2), visitor)

    for mail, headers in ((clinic, CLINIC_HEADERS), (reply, AUTOREPLY_HEADERS)):
        assert_well_formed(mail, headers)
        (sender,) = mail.message["From"].addresses
        assert sender.addr_spec == "leads@clinic.example"  # LEADS_MAIL_FROM's address
        # Decoded as RFC 2047 says (the policy's parser keeps the space between two
        # encoded words of a display name): exactly the configured name.
        assert display_name(mail) == CLINIC_NAME
        assert mail.sender == "leads@clinic.example"
        assert b"Bcc" not in mail.raw.split(b"\r\n\r\n", 1)[0]

    text = reply.part("plain").replace("\r\n", "\n")
    assert f"please call {CLINIC_NAME} on (202) 555-0123." in text
    assert text.endswith(f"\n\n{CLINIC_NAME}\nPhone: (202) 555-0123\nhttps://clinic.example/\n")
    html = reply.part("html")
    assert '<a href="tel:+12025550123">(202) 555-0123</a>' in html
    assert '<a href="https://clinic.example/">https://clinic.example/</a>' in html
    assert "Zoë&#x27;s &quot;Physio&quot; &amp; &lt;Co&gt;" in html


async def test_a_forms_clinic_name_is_the_from_of_its_emails(make_client, smtp, tmp_path) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(
        '[forms.dry-needling]\ntitle = "Learn more about dry needling"\n'
        'clinic_name = "Southside Backs"\n'
        'autoreply = "Thanks, we will call you."\n',
        encoding="utf-8",
    )
    client = await make_client(
        **settings_for(smtp),
        forms_file=forms,
        clinic_name="Northside Physio",
        clinic_url="https://northside.example/",
    )
    visitor = "ann@example.com"
    response = await submit(client, "api", name="Ann Smith", email=visitor)
    assert accepted("api", response), response.text
    clinic, reply = clinic_and_reply(await asyncio.to_thread(smtp.wait_for, 2), visitor)
    for mail in (clinic, reply):
        assert mail.message["From"] == "Southside Backs <leads@clinic.example>"
    text = reply.part("plain").replace("\r\n", "\n")
    assert text == (
        "Hello Ann,\n\nThanks, we will call you.\n\nSouthside Backs\nhttps://northside.example/\n"
    )


async def test_without_a_clinic_name_the_from_is_leads_mail_from_as_written(
    make_client, smtp
) -> None:
    client = await make_client(**settings_for(smtp), clinic_phone="+44 20 7946 0018")
    visitor = "ann@example.com"
    await submit(client, "api", name="Ann Smith", email=visitor)
    clinic, reply = clinic_and_reply(await asyncio.to_thread(smtp.wait_for, 2), visitor)
    assert clinic.message["From"] == reply.message["From"] == MAIL_FROM
    text = reply.part("plain").replace("\r\n", "\n")
    assert "please call the clinic on +44 20 7946 0018." in text
    assert text.endswith("emergency number.\n\nPhone: +44 20 7946 0018\n")
