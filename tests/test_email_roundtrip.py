"""Hostile names and messages make the round trip: through the JSON API, the SMTP channel and
a real aiosmtpd server, parsed back with the standard library's default policy, every
header of the clinic's email and of the autoreply reads exactly what it should, no other
header appears, and both body parts decode to exactly the text the clinic and the visitor
should read: not a character lost, added or reinterpreted.

Covers what the message writer must get right: encoded words typed as text, line breaks in
the message, astral characters, right-to-left text, words longer than a line (and than the
998-character line limit), quoted-printable and base64 bodies (long lines, many lines), and
lines that look like a MIME boundary, an SMTP end of data or a mbox ``From``.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from tests.mail import MailServer, Received, mail_server

INBOX = "desk@clinic.example,owner@clinic.example"
MAIL_FROM = "Clinic leads <leads@clinic.example>"
TITLE = "Learn more about dry needling"
LEAD_URL = re.compile(r"http://[^/\s]+/staff/leads/([0-9a-f-]{36})")
RECEIVED = re.compile(r"^Received: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", re.MULTILINE)

RLM = "\u200f"  # a right-to-left mark: allowed in a name, dropped from headers
ZAHRA = "\u0632\u0647\u0631\u0627\u0621"
AHMED = "\u0623\u062d\u0645\u062f"
ARABIC_MESSAGE = f"{ZAHRA}: \u0623\u0644\u0645 \u0641\u064a \u0627\u0644\u0638\u0647\u0631\n{AHMED}"

# (name as typed, the first name as the Subject and the greeting show it, message as typed)
CASES = [
    (
        "=?utf-8?b?QmNjOiB4QGV2aWwuaW8=?= Smith",
        "=?utf-8?b?QmNjOiB4QGV2aWwuaW8=?=",
        "=?utf-8?q?=0D=0ABcc:_x@evil.io?=\r\nBcc: thief@evil.example\r\n\r\nFAKE_BODY",
    ),
    (
        "\U0001d504\U0001d52b\U0001d52b Smith",
        "\U0001d504\U0001d52b\U0001d52b",
        " ".join(["My tooth 🦷 hurts 😬 since Monday."] * 12),
    ),
    ("A" * 90, "A" * 40, "x" * 1500),
    (f"{RLM}{ZAHRA}{RLM} {AHMED}", ZAHRA, ARABIC_MESSAGE),
    ('Zoë "Q" O\'Brien, <x@evil.io>', "Zoë", "From the start:\n.\n.\r\nend\n=3D =?= ="),
    (
        "Ann Lee",
        "Ann",
        "--===============1234567890123456789==\n--===============1234567890123456789==--\n"
        + "\n".join(f"line {n} Müller" for n in range(30)),
    ),
]


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with mail_server() as server:
        yield server


def header_names(mail: Received) -> list[str]:
    head = mail.raw.split(b"\r\n\r\n", 1)[0]
    return sorted(
        line.split(b":", 1)[0].decode() for line in head.split(b"\r\n") if line[:1] != b" "
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.iter_parts()
    assert (plain.get_content_type(), rich.get_content_type()) == ("text/plain", "text/html")
    assert plain.get_content_charset() == rich.get_content_charset() == "utf-8"
    assert not plain.defects
    assert not rich.defects
    assert not message.defects
    # Lines end in CRLF on the wire, whatever the transfer encoding: read them as lines.
    return tuple(str(p.get_content()).replace("\r\n", "\n") for p in (plain, rich))  # type: ignore[return-value]


def check_headers(mail: Received, expected: dict[str, str]) -> None:
    message = mail.message
    assert sorted(message.keys()) == sorted(expected) == header_names(mail)
    for name, value in expected.items():
        if name == "Date":
            assert message["Date"].datetime is not None
        elif name == "Content-Type":
            assert message.get_content_type() == value
        else:
            assert message[name] == value, name
        assert not message[name].defects, name


@pytest.mark.parametrize("eight_bit_mime", [True, False])
async def test_hostile_names_and_messages_arrive_exactly(
    make_client, smtp, eight_bit_mime: bool
) -> None:
    """To a server that offers 8BITMIME (8-bit bodies) and to one that does not (base64)."""
    smtp.eight_bit_mime = eight_bit_mime
    client = await make_client(
        smtp_url=f"smtp://127.0.0.1:{smtp.port}?starttls=off",
        inbox=INBOX,
        mail_from=MAIL_FROM,
        autoreply=True,
        retry_base_seconds=0.05,
    )
    visitors = [f"visitor{n}@example.com" for n in range(len(CASES))]
    for visitor, (name, _, message) in zip(visitors, CASES, strict=True):
        response = await client.post(
            "/api/leads", json={"consent": True, "name": name, "email": visitor, "message": message}
        )
        assert response.status_code == 201, response.text
    mails = await asyncio.to_thread(smtp.wait_for, 2 * len(CASES))
    assert len(mails) == 2 * len(CASES)
    replies = {m.recipients[0]: m for m in mails if m.recipients[0] in visitors}
    clinic = {str(m.message["Reply-To"]): m for m in mails if m.recipients[0] not in visitors}
    rest = set()
    for visitor, (name, first, message) in zip(visitors, CASES, strict=True):
        words = message.replace("\r\n", "\n")
        mail = clinic[visitor]
        notification_id = mail.message["X-Leads-Notification-Id"]
        check_headers(
            mail,
            {
                "From": MAIL_FROM,
                "To": "desk@clinic.example, owner@clinic.example",
                "Subject": f"New enquiry: {TITLE} from {first}",
                "Message-ID": f"<{notification_id}@clinic.example>",
                "Date": "",
                "Reply-To": visitor,
                "X-Leads-Notification-Id": notification_id,
                "MIME-Version": "1.0",
                "Content-Type": "multipart/alternative",
            },
        )
        assert sorted(mail.recipients) == ["desk@clinic.example", "owner@clinic.example"]
        assert ("BODY=8BITMIME" in mail.mail_options) is eight_bit_mime
        if not eight_bit_mime:
            assert mail.raw.isascii()
        plain, rich = parts(mail.message)
        found = LEAD_URL.search(plain)
        assert found
        url = found.group(0)
        shown_first = name.split()[0][:40]
        assert RECEIVED.sub("Received: <time>", plain) == (
            f'A new enquiry came in through "{TITLE}".\n\n'
            f"Name: {name}\nEmail: {visitor}\nReceived: <time>\n\n"
            f"Message:\n{words}\n\nOpen this lead: {url}\n\n"
            f"Reply to this email to write to {shown_first} directly.\n"
        )
        e = html.escape
        assert re.sub(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d UTC<", "<td><time><", rich) == (
            "<!doctype html><html><body>"
            f"<p>{e(f'A new enquiry came in through {chr(34)}{TITLE}{chr(34)}.')}</p>"
            "<table cellpadding=4>"
            f"<tr><th align=left>Name</th><td>{e(name)}</td></tr>"
            f'<tr><th align=left>Email</th><td><a href="mailto:{visitor}">{visitor}</a></td></tr>'
            "<tr><th align=left>Received</th><td><time></td></tr></table>"
            f"<p><strong>Message:</strong></p><p>{e(words).replace(chr(10), '<br>')}</p>"
            f'<p><a href="{url}">Open this lead</a></p>'
            f"<p>{e(f'Reply to this email to write to {shown_first} directly.')}</p>"
            "</body></html>\n"
        )

        reply = replies[visitor]
        reply_id = reply.message["X-Leads-Notification-Id"]
        check_headers(
            reply,
            {
                "From": MAIL_FROM,
                "To": visitor,
                "Subject": f"We have your request: {TITLE}",
                "Message-ID": f"<{reply_id}@clinic.example>",
                "Date": "",
                "Reply-To": "desk@clinic.example",
                "X-Leads-Notification-Id": reply_id,
                "Auto-Submitted": "auto-replied",
                "MIME-Version": "1.0",
                "Content-Type": "multipart/alternative",
            },
        )
        assert reply.recipients == [visitor]
        plain, rich = parts(reply.message)
        greeting = f"Hello {shown_first},"
        assert plain.startswith(f"{greeting}\n\n")
        assert rich.startswith(f"<!doctype html><html><body><p>{e(greeting)}</p><p>")
        # The rest is the clinic's own words, the same for every visitor.
        rest.add((plain.removeprefix(greeting), rich.replace(f"<p>{e(greeting)}</p>", "", 1)))
    assert len(rest) == 1
