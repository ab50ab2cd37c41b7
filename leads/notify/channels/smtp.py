"""Email through an SMTP server (aiosmtplib).

``LEADS_SMTP_URL``: ``smtp://user:pass@host:587`` (STARTTLS when offered: ``?starttls=auto``,
the default; ``require`` refuses to send without it; ``off`` never upgrades), or
``smtps://user:pass@host:465`` for TLS from the first byte. User and password are
URL-encoded (``@`` is ``%40``). Certificates are verified against the system's CA bundle
(or the file named by the standard ``SSL_CERT_FILE`` variable).

The message and its headers are built by :mod:`leads.notify.mime` once the server has
answered EHLO, since whether it offers SMTPUTF8 decides how a non-ASCII address is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx

from leads.core.vocabulary import Channel
from leads.errors import ConfigurationError, PermanentDeliveryError, TransientDeliveryError
from leads.notify.channels.base import ChannelEntry, ChannelRegistry, Clock
from leads.notify.channels.mail import EmailChannel
from leads.notify.content import Email
from leads.notify.mime import to_outgoing
from leads.settings import Settings

log = logging.getLogger("leads.notify")


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
    def __init__(self, settings: Settings, server: SMTPServer, *, timeout: float):
        super().__init__(settings)
        self.server = server
        self.timeout = timeout

    async def send(self, email: Email) -> None:
        server = self.server
        client = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=server.starttls,
            timeout=self.timeout,
        )
        try:
            async with client:  # connects, with STARTTLS and AUTH as set
                await _greet(client)
                # Known only now: whether a visitor's non-ASCII address can be written.
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
            raise TransientDeliveryError(_failure(exc, server)) from exc
        except (OSError, TimeoutError) as exc:
            raise TransientDeliveryError(_failure(exc, server)) from exc
        if errors:
            # Accepted for some inbox addresses, refused for others. Not retried: that would
            # send it twice to those who have it. Said loudly instead.
            codes = sorted({r.code for r in errors.values()})
            log.warning(
                "SMTP refused some inbox addresses (codes %s); delivered to the rest", codes
            )


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


def _build(settings: Settings, http: httpx.AsyncClient, clock: Clock) -> SMTPChannel:
    return SMTPChannel(settings, _server(settings), timeout=settings.delivery_timeout_seconds)


def register(registry: ChannelRegistry) -> None:
    registry.register(
        Channel.SMTP,
        ChannelEntry(
            configured=lambda settings: settings.smtp_url is not None,
            build=_build,
            check=_server,  # LEADS_SMTP_URL must parse
            carries_autoreply=True,
        ),
    )


def _failure(exc: BaseException, server: SMTPServer) -> str:
    """What went wrong, where, and why: the error's kind, the server's host and port, and
    the cause's kind (never the credentials, which only the URL holds)."""
    cause = exc.__cause__ or exc.__context__
    why = f", {type(cause).__name__}" if cause is not None and cause is not exc else ""
    return f"SMTP {type(exc).__name__} ({server.host}:{server.port}{why})"
