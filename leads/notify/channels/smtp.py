"""Email through an SMTP server (aiosmtplib).

``LEADS_SMTP_URL``: ``smtp://user:pass@host:587`` (STARTTLS when offered: ``?starttls=auto``,
the default; ``require`` refuses to send without it; ``off`` never upgrades), or
``smtps://user:pass@host:465`` for TLS from the first byte. User and password are
URL-encoded (``@`` is ``%40``). Certificates are verified against the system's CA bundle
(or the file named by the standard ``SSL_CERT_FILE`` variable).

Sessions are kept open between messages (:mod:`leads.notify.channels.smtp_sessions`). The
message and its headers are built by :mod:`leads.notify.mime` once the session it goes out
on is known, since whether that server's EHLO offered SMTPUTF8 decides how a non-ASCII
address is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from leads.core.vocabulary import Channel
from leads.errors import ConfigurationError, PermanentDeliveryError, TransientDeliveryError
from leads.notify.channels.base import ChannelEntry, ChannelRegistry, Clock
from leads.notify.channels.mail import EmailChannel, inbox_routes
from leads.notify.channels.smtp_sessions import Session, SessionGone, SMTPSessions
from leads.notify.content import Email
from leads.notify.mime import to_outgoing
from leads.outbound import HTTPClient
from leads.settings import Settings
from leads.storage.types import utcnow

log = logging.getLogger("leads.notify")

POOL_SIZE = 8  # idle sessions kept: as many as the dispatcher sends on at once per route


@dataclass(frozen=True)
class SMTPServer:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    starttls: bool | None  # True: require, None: when offered, False: never

    @classmethod
    def from_url(cls, url: str) -> SMTPServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigurationError("LEADS_SMTP_URL must look like smtp://user:pass@host:587")
        mode = parse_qs(parts.query).get("starttls", ["auto"])[0]
        if mode not in ("require", "auto", "off"):
            raise ConfigurationError("LEADS_SMTP_URL: starttls must be require, auto or off")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            starttls=False if implicit else {"require": True, "auto": None, "off": False}[mode],
        )


class SMTPChannel(EmailChannel):
    """Sends each email on a session from its pool (:mod:`.smtp_sessions`): several
    messages per session, and a session the server closed while idle replaced once."""

    def __init__(
        self,
        settings: Settings,
        server: SMTPServer,
        *,
        timeout: float,
        clock: Clock = utcnow,
        sessions: int = POOL_SIZE,
    ):
        super().__init__(settings)
        self.server = server
        self.timeout = timeout
        self.sessions = SMTPSessions(self._connect, size=sessions, clock=clock)

    async def send(self, email: Email) -> None:
        try:
            try:
                await self._send_once(email)
            except SessionGone:
                # Closed by the server while idle, noticed before a byte of the message
                # went: once more, on a fresh session. (Never after DATA: that could send
                # the email twice.)
                await self._send_once(email, fresh=True)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if any(400 <= code < 500 for code in codes):
                raise TransientDeliveryError(f"SMTP recipients refused {codes}") from exc
            raise PermanentDeliveryError(f"SMTP recipients refused {codes}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TransientDeliveryError(f"SMTP {exc.code}") from exc
            raise PermanentDeliveryError(f"SMTP {exc.code}") from exc
        except aiosmtplib.SMTPException as exc:
            if "STARTTLS" in str(exc):  # ?starttls=require and the server cannot: a setting
                raise PermanentDeliveryError("SMTP server does not offer STARTTLS") from exc
            raise TransientDeliveryError(_failure(exc, self.server)) from exc
        except (OSError, TimeoutError) as exc:
            raise TransientDeliveryError(_failure(exc, self.server)) from exc

    async def _send_once(self, email: Email, *, fresh: bool = False) -> None:
        client = await self.sessions.take(fresh=fresh)
        try:
            # Known only now, from this session's EHLO: whether a visitor's non-ASCII
            # address can be written, and whether the body may be 8-bit.
            outgoing = to_outgoing(email, smtputf8=client.supports_extension("smtputf8"))
            eight_bit = client.supports_extension("8bitmime")
            options = ["SMTPUTF8"] if outgoing.smtputf8 else []
            if eight_bit:
                options.append("BODY=8BITMIME")
            errors, _ = await client.sendmail(
                outgoing.sender,
                outgoing.recipients,
                outgoing.as_bytes(eight_bit=eight_bit),
                mail_options=options,
            )
        except SessionGone:
            self.sessions.closed_by_server(client)
            raise
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            self.sessions.retire(client)  # the server said no: goodbye, not reused
            raise
        except BaseException:  # the connection failed, timed out, or we were cancelled
            self.sessions.discard(client)
            raise
        self.sessions.give_back(client)
        if errors:
            # Accepted for some inbox addresses, refused for others. Not retried: that would
            # send it twice to those who have it. Said loudly instead.
            codes = sorted({r.code for r in errors.values()})
            log.warning(
                "SMTP refused some inbox addresses (codes %s); delivered to the rest", codes
            )

    async def _connect(self) -> aiosmtplib.SMTP:
        """A new session: connected, with STARTTLS and AUTH as set, and greeted."""
        server = self.server
        client = Session(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=server.starttls,
            timeout=self.timeout,
        )
        try:
            await client.connect()
            await _greet(client)
        except BaseException:
            self.sessions.discard(client)
            raise
        return client

    async def aclose(self) -> None:
        """``QUIT`` on the idle sessions (the dispatcher's stop, the app's shutdown)."""
        await self.sessions.aclose()


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO (HELO for a server without it), unless connecting said it already, so that the
    server's extensions (SMTPUTF8, 8BITMIME) are known before the message is built."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()


def _server(settings: Settings) -> SMTPServer:
    assert settings.smtp_url is not None
    return SMTPServer.from_url(settings.smtp_url.get_secret_value())


def _build(settings: Settings, http: HTTPClient, clock: Clock) -> SMTPChannel:
    return SMTPChannel(
        settings, _server(settings), timeout=settings.delivery_timeout_seconds, clock=clock
    )


def _configured(settings: Settings) -> bool:
    return settings.smtp_url is not None


def register(registry: ChannelRegistry) -> None:
    registry.register(
        Channel.SMTP,
        ChannelEntry(
            configured=_configured,
            build=_build,
            check=_server,  # LEADS_SMTP_URL must parse
            routes=inbox_routes(_configured),
            reads="inbox",
            needs="LEADS_SMTP_URL",
            carries_autoreply=True,
        ),
    )


def _failure(exc: BaseException, server: SMTPServer) -> str:
    """What went wrong, where, and why: the error's kind, the server's host and port, and
    the cause's kind (never the credentials, which only the URL holds)."""
    cause = exc.__cause__ or exc.__context__
    why = f", {type(cause).__name__}" if cause is not None and cause is not exc else ""
    return f"SMTP {type(exc).__name__} ({server.host}:{server.port}{why})"
