"""The app's outgoing HTTP client (email APIs, webhooks, texts, captcha), made at its first
request.

Importing httpx costs a server ~4.5 MB and 60-100 ms of its start, and building a client
builds a TLS context holding every certificate of the CA bundle (2.5 MB and tens of
milliseconds more): all of it spent even when nothing is ever sent over HTTP (SMTP or the
log channel, and no captcha). :class:`Outbound` stands where the client would, with the
two calls the deliveries and the captcha make, and imports httpx and builds the client
(HTTP/1.1 connections kept alive between requests, a few per host, so a burst of webhooks
to one receiver reuses them) when the first of them is made. The lifespan makes it at
start when a captcha is configured: then a visitor's submission is the first request.

The deliveries and the checks accept an ``httpx.AsyncClient`` as well (:data:`HTTPClient`):
a command or a test may bring its own.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import httpx

KEEPALIVE_SECONDS = 4.0  # under the 5 s uvicorn, nginx's upstreams and others keep one open
MAX_CONNECTIONS = 64
MAX_KEEPALIVE_CONNECTIONS = 16


class Outbound:
    """``httpx.AsyncClient(timeout=timeout, transport=transport, limits=...)``, made when
    first used."""

    def __init__(
        self, timeout: float, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        return self.make()

    def make(self) -> httpx.AsyncClient:
        """The client, made now if it is not yet."""
        if self._client is None:
            import httpx

            limits = httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_SECONDS,
            )
            transport = self._transport or httpx.AsyncHTTPTransport(limits=limits)
            self._client = httpx.AsyncClient(
                timeout=self._timeout, transport=transport, limits=limits
            )
        return self._client

    async def send(
        self, request: httpx.Request, *, follow_redirects: bool = False
    ) -> httpx.Response:
        return await self.client.send(request, follow_redirects=follow_redirects)

    async def post(self, url: str, **options: Any) -> httpx.Response:
        return await self.client.post(url, **options)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        elif self._transport is not None:
            await self._transport.aclose()

    async def __aenter__(self) -> Outbound:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


# What a delivery or a check sends through: the app's Outbound, or a client of one's own.
HTTPClient = Union["httpx.AsyncClient", Outbound]
