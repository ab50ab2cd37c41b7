"""Open SMTP sessions kept between messages, so a burst of leads is not a burst of
connections (each a TCP handshake, a greeting, EHLO, STARTTLS, EHLO again and AUTH).

- At most ``size`` sessions wait idle (as many as the dispatcher lets one route send at
  once); one more in use than that is closed with ``QUIT`` when its message is sent.
- A session idle for longer than ``idle`` (by the channel's clock: well under the
  5 minutes RFC 5321 asks servers to wait), or that the server has closed, is not used
  again: it gets ``QUIT`` when a session is next taken, or from a timer once ``idle``
  is up. Nor is one that has carried ``MESSAGES_PER_SESSION`` messages (some servers
  count them), or one whose last command failed.
- A session taken from the pool is not checked first (a ``RSET`` would cost every message
  a round trip): a server that closed it while it was idle says so by hanging up on, or
  answering 421 to, the message's ``MAIL FROM``, before anything of the message has been
  sent, and :class:`SessionGone` says so (the caller then opens a fresh session). A failure
  after ``MAIL FROM`` is the message's own.
- :meth:`SMTPSessions.aclose` says ``QUIT`` on every idle session and waits until its
  connection (the TLS layer too, after STARTTLS) is closed, so nothing is left half-open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse

IDLE = timedelta(seconds=10)
MESSAGES_PER_SESSION = 20  # Exchange refuses more on one connection by default
QUIT_SECONDS = 2.0  # how long a goodbye may take before the connection is cut


class SessionGone(Exception):
    """A pooled session turned out closed before anything of a message was sent."""


class SMTPSessions:
    """A small pool of connected, greeted (and authenticated) aiosmtplib clients."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[aiosmtplib.SMTP]],
        *,
        size: int,
        clock: Callable[[], datetime],
        idle: timedelta = IDLE,
    ):
        self._connect = connect
        self.size = size
        self.idle = idle
        self.clock = clock
        self._idle: list[tuple[aiosmtplib.SMTP, datetime]] = []  # most recent last
        self._sent: dict[aiosmtplib.SMTP, int] = {}  # messages each open session carried
        self._goodbyes: set[asyncio.Task[None]] = set()
        self._sweep: asyncio.TimerHandle | None = None  # when idle sessions are looked at
        self.opened = 0  # sessions opened so far (for the log and the benchmarks)

    async def take(self, *, fresh: bool = False) -> aiosmtplib.SMTP:
        """A session to send on: a pooled one (if the server closed it meanwhile, its
        ``MAIL FROM`` raises :class:`SessionGone`), or with ``fresh`` a new one."""
        now = self.clock()
        while self._idle and not fresh:
            client, since = self._idle.pop()
            if not client.is_connected or now - since > self.idle:
                self._say_goodbye(client)
                continue
            if isinstance(client, Session):
                client.reused = True
            return client
        client = await self._connect()
        self.opened += 1
        self._sent[client] = 0
        return client

    def closed_by_server(self, client: aiosmtplib.SMTP) -> None:
        """The server closed ``client`` while it idled: those idle longer are closed too."""
        self.discard(client)
        older, self._idle = self._idle, []
        for other, _ in older:
            self._say_goodbye(other)

    def give_back(self, client: aiosmtplib.SMTP) -> None:
        """A message went out on ``client``: keep it for the next, if there is room."""
        sent = self._sent.get(client, 0) + 1
        self._sent[client] = sent
        keep = client.is_connected and sent < MESSAGES_PER_SESSION
        if keep and len(self._idle) < self.size:
            self._idle.append((client, self.clock()))
            self._sweep_later()
        else:
            self._say_goodbye(client)

    def _sweep_later(self) -> None:
        if self._sweep is None:
            delay = self.idle.total_seconds() + 0.5
            self._sweep = asyncio.get_running_loop().call_later(delay, self._close_idle)

    def _close_idle(self) -> None:
        """Say goodbye to the sessions idle past the bound (rather than leave them to the
        server's own timeout); look again later while some are left."""
        self._sweep = None
        now = self.clock()
        keep = [(c, since) for c, since in self._idle if now - since <= self.idle]
        for client, since in self._idle:
            if now - since > self.idle:
                self._say_goodbye(client)
        self._idle = keep
        if keep:
            self._sweep_later()

    def retire(self, client: aiosmtplib.SMTP) -> None:
        """The server refused something on ``client``: say goodbye, don't reuse it."""
        self._say_goodbye(client)

    def discard(self, client: aiosmtplib.SMTP) -> None:
        """``client``'s connection failed, timed out or was interrupted: cut it now (no
        ``QUIT``: a server that stopped answering would only make us wait)."""
        self._sent.pop(client, None)
        _abort(client)
        client.close()

    async def aclose(self) -> None:
        """``QUIT`` on every idle session; wait for every goodbye to finish."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for client, _ in idle:
            self._say_goodbye(client)
        if self._goodbyes:
            await asyncio.wait(self._goodbyes)

    def _say_goodbye(self, client: aiosmtplib.SMTP) -> None:
        self._sent.pop(client, None)
        task = asyncio.create_task(self._quit(client))
        self._goodbyes.add(task)
        task.add_done_callback(self._goodbyes.discard)

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        connected = client.is_connected
        try:
            async with asyncio.timeout(QUIT_SECONDS):
                if connected:
                    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                        await client.quit(timeout=QUIT_SECONDS)
                    client.close()
                    if isinstance(client, Session):
                        await client.gone.wait()  # after STARTTLS, the TLS shutdown first
        except TimeoutError:
            pass
        finally:
            _abort(client)  # not closed in time: cut, never left half-open
            client.close()


class Session(aiosmtplib.SMTP):
    """aiosmtplib's client, saying when its connection is closed, both ways (it has no
    event of its own for that): a goodbye waits for it, so none is left half-open."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.gone = asyncio.Event()
        self.reused = False  # it carried a message before, and idled in the pool since

    async def mail(self, sender: str, *args: Any, **kwargs: Any) -> SMTPResponse:
        """``MAIL FROM``, the first command of a message: on a reused session, a hang-up or
        a 421 here means the server closed the session while it idled (nothing of the
        message was sent), raised as :class:`SessionGone`."""
        try:
            return await super().mail(sender, *args, **kwargs)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if self.reused:
                raise SessionGone from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if self.reused and exc.code == 421:  # closing the channel (its idle timeout)
                raise SessionGone from exc
            raise

    def _on_connection_lost(self, protocol: SMTPProtocol) -> None:
        super()._on_connection_lost(protocol)
        self.gone.set()


def _abort(client: aiosmtplib.SMTP) -> None:
    """Cut ``client``'s connection at once (no TLS goodbye, no waiting for the server)."""
    transport = client.transport
    if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
        transport.abort()
