"""``GET /metrics``: who may read it, and the separate listener of LEADS_METRICS_BIND.

- LEADS_METRICS_TOKEN alone: ``/metrics`` on the main port, for ``Authorization: Bearer``
  with that token (else 401).
- LEADS_METRICS_BIND: ``leads serve`` opens a second, tiny server on that address, in its
  own process beside uvicorn's workers (a thread with its own event loop), which reads every
  worker's values from the multiprocess directory. ``/metrics`` on the main port is 404;
  the listener asks for the token only if LEADS_METRICS_TOKEN is set as well.
- Neither: there is no ``/metrics`` (404).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from leads.abuse.clock import SYSTEM_CLOCK, Clock
from leads.errors import LeadsError, NotAuthenticated, UsageError
from leads.metrics import Metrics, exposition
from leads.services import services_of
from leads.settings import Settings
from leads.storage.backlog import Backlog, outbox_backlog
from leads.storage.database import Database
from leads.web.problems import ProblemResponse

log = logging.getLogger("leads.metrics")

# The classic text format, which every Prometheus reads; our names need none of 1.0.0's escaping.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_routes(settings: Settings) -> list[BaseRoute]:
    """The main port's ``/metrics``: only with a token, and only without a listener of its own."""
    if settings.metrics_token is None or settings.metrics_bind is not None:
        return []
    return [Route("/metrics", scrape, methods=["GET"])]


async def scrape(request: Request) -> Response:
    services = services_of(request)
    require_token(request, services.settings)
    backlog = await read_backlog(services.database, services.now())
    return await answer(services.site.metrics, backlog)


def require_token(request: Request, settings: Settings) -> None:
    if settings.metrics_token is None:
        return
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected):
        raise NotAuthenticated("Send LEADS_METRICS_TOKEN as Authorization: Bearer <token>.")


async def read_backlog(database: Database, now: datetime) -> Backlog | None:
    """The outbox's numbers; None (their gauges left out) while the database cannot answer,
    so that the process's own counters are still scraped."""
    try:
        async with database.reading() as session:
            return await outbox_backlog(session=session, now=now)
    except LeadsError as exc:
        log.warning("metrics: the outbox could not be read (%s)", type(exc).__name__)
        return None


async def answer(metrics: Metrics | None, backlog: Backlog | None) -> Response:
    # Off the event loop: under `leads serve` this reads every worker's files.
    body = await asyncio.to_thread(exposition, metrics, backlog)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def listener_app(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Starlette:
    """The LEADS_METRICS_BIND server's app: ``/metrics`` and nothing else."""
    database = Database.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await database.close()

    async def listener_scrape(request: Request) -> Response:
        try:
            require_token(request, settings)
        except NotAuthenticated as problem:
            return ProblemResponse(problem.body(), status_code=401, headers=problem.headers)
        return await answer(
            None, await read_backlog(database, datetime.fromtimestamp(clock.now(), UTC))
        )

    return Starlette(
        routes=[Route("/metrics", listener_scrape, methods=["GET"])], lifespan=lifespan
    )


class MetricsListener:
    """The LEADS_METRICS_BIND server, run in a thread of `leads serve`'s own process.

    The socket is bound at once (:meth:`open`), so an address in use stops `leads serve` with
    one line before any worker starts, instead of a thread dying unseen."""

    def __init__(self, settings: Settings):
        assert settings.metrics_bind is not None
        self.settings = settings
        self.address = settings.metrics_bind
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        host, _, port = self.address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            sock.close()
            reason = exc.strerror or type(exc).__name__
            raise UsageError(
                f"LEADS_METRICS_BIND: cannot listen on {self.address}: {reason}"
            ) from None
        config = uvicorn.Config(
            listener_app(self.settings),
            log_level=self.settings.log_level,
            access_log=False,
            server_header=False,
            lifespan="on",
        )
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="leads-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
