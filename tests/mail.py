"""A real SMTP server for tests: aiosmtpd in a thread, recording what it accepts and
answering DATA from a script ("451 ...", "550 ...") before going back to "250 OK"."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's, e.g. SMTPUTF8

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


@dataclass
class MailServer:
    port: int
    received: list[Received] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    delay: float = 0.0
    on_data: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.on_data is not None:
            self.on_data()
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            answer = self.script.pop(0) if self.script else "250 OK"
            if answer.startswith("250"):
                raw = envelope.original_content or envelope.content
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                self.received.append(
                    Received(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        parsed,  # type: ignore[arg-type]
                        raw,
                        [o.upper() for o in envelope.mail_options],
                    )
                )
        return answer

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} message(s), got {len(self.received)}")


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.contextmanager
def mail_server(
    *,
    tls: tuple[Path, Path] | None = None,
    credentials: tuple[str, str] | None = None,
    smtputf8: bool = False,
) -> Iterator[MailServer]:
    """With ``tls``: STARTTLS required. With ``credentials``: AUTH required (after TLS).
    With ``smtputf8``: the server offers SMTPUTF8 (UTF-8 addresses and headers)."""
    server = MailServer(port=free_port())
    options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        options.update(tls_context=context, require_starttls=True)
    if credentials is not None:

        def authenticate(
            _server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and (data.login.decode(), data.password.decode()) == credentials
            )
            if ok:
                server.logins.append(data.login.decode())
            return AuthResult(success=ok, handled=False)  # False: the server answers 535

        options.update(
            authenticator=authenticate, auth_required=True, auth_require_tls=tls is not None
        )
    controller = Controller(server, hostname="127.0.0.1", port=server.port, **options)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


INBOX = "desk@clinic.example,owner@clinic.example"


def smtp_settings(server: MailServer, **extra: object) -> dict[str, object]:
    """Settings that send the clinic's email to ``server`` (plain SMTP, two inboxes)."""
    return {
        "smtp_url": f"smtp://127.0.0.1:{server.port}?starttls=off",
        "inbox": INBOX,
        "mail_from": "Clinic leads <leads@clinic.example>",
        "retry_base_seconds": 0.05,
        **extra,
    }
