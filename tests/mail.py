"""A real SMTP server for tests: aiosmtpd in a thread, recording what it accepts and
answering DATA from a script ("451 ...", "550 ...") before going back to "250 OK". It also
counts what a client does with its connections: the sessions (one per TCP connection that
said EHLO or HELO), each message's session, the QUITs; it can drop sessions left idle
(``idle_timeout``) and hang up on a session that carried a message before (``hang_ups``).
Stopping waits (a little) for open connections to close, so none is cut half-way."""

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
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.servers import free_port


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's, e.g. SMTPUTF8
    session: tuple[str, int] | None = None  # the client's address: which session carried it

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
    sessions: list[tuple[str, int]] = field(default_factory=list)  # in the order they began
    quits: list[tuple[str, int]] = field(default_factory=list)  # the sessions that said QUIT
    hang_ups: int = 0  # this many sessions that carried a message hang up at their next command
    hung_up: list[tuple[str, int]] = field(default_factory=list)
    open_connections: int = 0
    live: set[Any] = field(default_factory=set)  # the server's protocols, one per connection
    eight_bit_mime: bool = True  # False: EHLO leaves 8BITMIME out (a 7-bit-only server)

    def cut_connections(self) -> None:
        for protocol in list(self.live):
            transport = protocol._original_transport or protocol.transport
            if transport is not None:
                transport.abort()

    def _greeted(self, session: Any) -> None:
        with self.lock:
            if session.peer not in self.sessions:
                self.sessions.append(session.peer)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # as aiosmtpd does when no hook is set
        self._greeted(session)
        if not self.eight_bit_mime:
            return [r for r in responses if "8BITMIME" not in r]
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        session.host_name = hostname
        self._greeted(session)
        return f"250 {server.hostname}"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quits.append(session.peer)
        return "221 Bye"

    def _hang_up(self, server: Any, session: Any) -> bool:
        with self.lock:
            used = any(r.session == session.peer for r in self.received)
            if not (used and self.hang_ups > 0):
                return False
            self.hang_ups -= 1
            self.hung_up.append(session.peer)
        server.transport.close()
        return True

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self._hang_up(server, session)
        return "250 OK"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self._hang_up(server, session):
            return "250 OK"  # never heard: the connection is closed
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

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
                        session.peer,
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
    idle_timeout: float | None = None,
) -> Iterator[MailServer]:
    """With ``tls``: STARTTLS required. With ``credentials``: AUTH required (after TLS).
    With ``smtputf8``: the server offers SMTPUTF8 (UTF-8 addresses and headers). With
    ``idle_timeout``: a session silent that many seconds is closed by the server."""
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
    if idle_timeout is not None:
        options["timeout"] = idle_timeout  # aiosmtpd closes a connection idle that long
    controller = _CountingController(server, hostname="127.0.0.1", port=server.port, **options)
    controller.start()
    try:
        yield server
    finally:
        # A client may still hold a session open (leads keeps them between messages): cut
        # what is left, in the server's loop, before stopping that loop, so that no socket
        # is left open. (Cut, not closed: a TLS goodbye would wait for this thread's client.)
        controller.loop.call_soon_threadsafe(server.cut_connections)
        deadline = time.monotonic() + 5
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        controller.stop()


class _CountingSMTP(SMTP):
    """aiosmtpd's server, counting its open connections on the MailServer."""

    def __init__(self, handler: MailServer, **options: Any):
        super().__init__(handler, **options)
        self.counted = handler

    def connection_made(self, transport: Any) -> None:
        again = self._original_transport is not None  # the same connection, after STARTTLS
        super().connection_made(transport)
        if not again:
            with self.counted.lock:
                self.counted.open_connections += 1
                self.counted.live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        with self.counted.lock:
            self.counted.open_connections -= 1
            self.counted.live.discard(self)


class _CountingController(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


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
