"""The transport under the app's outgoing HTTP client (email APIs, webhooks, captcha),
made at its first request.

httpx builds its transport, and with it a TLS context holding every certificate of the CA
bundle, when the client is made: 2.5 MB and tens of milliseconds of a server's start, spent
even when nothing here is ever sent over HTTP (SMTP, or the log channel, and no captcha).
:class:`DeferredTransport` makes the same transport, with the same connection limits
(``notify/channels/base.py: HTTP_LIMITS``), on the first request instead. The lifespan
uses it unless a captcha is configured: then a visitor's submission is the first request,
and the transport is made at start as before.
"""

from __future__ import annotations

import httpx


class DeferredTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncHTTPTransport(limits=limits)``, made when first sent through."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        self._limits = limits
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport(limits=self._limits)
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
