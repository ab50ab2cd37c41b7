"""One log line per HTTP request, and its request id on the response.

:class:`RequestLog` is the outermost middleware. Each request gets an id: the
``X-Request-ID`` a trusted proxy (LEADS_TRUSTED_PROXIES) sent, if it is 1-128 visible
ASCII characters, or else a new one (a uuid4 in hex). The id goes back in the response's
``X-Request-ID`` and into the request's log line, an event (:mod:`leads.logs`) with
``request_id``, ``method``, ``route`` (the matched route's template, such as
``/api/staff/leads/{lead_id}``: never the path itself, which can carry ids and a query),
``status`` and ``duration_ms``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads.abuse.clientip import IPNetwork, parse_ip, parse_networks
from leads.logs import event

log = logging.getLogger("leads.http")

HEADER = "X-Request-ID"
VALID_ID = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII: no spaces, no controls


def route_template(scope: Scope) -> str | None:
    """The template of the route that answered (a mount as ``/static/{path}``); None when
    none matched (a 404)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


class RequestLog:
    def __init__(
        self,
        app: ASGIApp,
        trusted_proxies: Sequence[str] = (),
        timer: Callable[[], float] = time.perf_counter,
    ):
        self.app = app
        self.trusted: tuple[IPNetwork, ...] = parse_networks(trusted_proxies)
        self.timer = timer

    def request_id(self, scope: Scope) -> str:
        given = Headers(scope=scope).get(HEADER)
        if given is not None and VALID_ID.fullmatch(given) and self._from_trusted(scope):
            return given
        return uuid.uuid4().hex

    def _from_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        peer = parse_ip(client[0]) if client else None
        if peer is None:
            return False
        forms: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [peer]
        if isinstance(peer, ipaddress.IPv4Address):  # also as an IPv6 network writes it
            forms.append(ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + peer.packed))
        return any(a.version == n.version and a in n for a in forms for n in self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.timer()
        request_id = self.request_id(scope)
        status = 500  # if the app fails before it answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration_ms = round((self.timer() - started) * 1000, 1)
            route = route_template(scope)
            log.info(
                "%s %s %d",
                scope["method"],
                route or "-",
                status,
                extra=event(
                    "request",
                    request_id=request_id,
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=duration_ms,
                ),
            )
