"""``create_app(settings)``: the whole service assembled from plain lists."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from leads.abuse.clock import SYSTEM_CLOCK, Clock
from leads.core.forms import load_forms
from leads.errors import HTTPProblem
from leads.i18n.catalogs import words_for
from leads.i18n.templating import EXTENSIONS, install_words
from leads.intake import api, pages
from leads.intake.consent import check_wordings
from leads.intake.defence import Defences
from leads.intake.writer import IntakeWriter
from leads.keys import with_secret_key
from leads.logs import configure_logging
from leads.metrics import Metrics
from leads.notify.channels.base import http_client
from leads.notify.dispatcher import Dispatcher
from leads.openapi import document as openapi
from leads.privacy import api as erasures_api
from leads.services import Services, Site
from leads.settings import Settings
from leads.staff import api as staff_api
from leads.staff import login, stats_api
from leads.staff import pages as staff_pages
from leads.staff.throttle import LoginThrottle
from leads.storage.database import Database
from leads.web import health
from leads.web.headers import SecurityHeaders
from leads.web.problems import (
    ContainUnexpected,
    on_http_exception,
    on_problem,
    on_unexpected,
)
from leads.web.requestlog import RequestLog
from leads.web.scrape import metrics_routes
from leads.web.timing import RequestTimer

if TYPE_CHECKING:
    import httpx

PACKAGE = Path(__file__).parent


def create_app(
    settings: Settings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """Build the service. Nothing touches the network or the disk until the lifespan starts,
    except reading the forms file, so that a bad one fails at once and says why.

    The lifespan owns the database engine, the HTTP client and the dispatcher.
    ``http_transport`` replaces the network under the HTTP client (email APIs, webhooks):
    for tests of providers that cannot be reached from here. ``clock`` is the time the
    defences measure with (form tokens, rate windows, the tarpit): for tests that move it."""
    settings = with_secret_key(settings or Settings())
    forms = load_forms(settings.forms_file, region=settings.default_region)
    templates = Jinja2Templates(
        env=jinja2.Environment(
            loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
            autoescape=True,
            # Compiled once per process: the files do not change under a running server.
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
            extensions=EXTENSIONS,
        )
    )
    install_words(templates.env, words_for(settings.language))
    # Pages that know their form pass its identity; the rest (error pages) show this one.
    templates.env.globals["clinic"] = settings.clinic_identity()
    metrics = Metrics()  # this app's own: tests build many apps in one process
    site = Site(settings, forms, templates, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Closed in reverse order, each whatever happened to the one before: the intake is
        # drained first (what was accepted is written), the database closed last.
        async with contextlib.AsyncExitStack() as stack:
            database = Database.from_settings(settings)
            stack.push_async_callback(database.close)
            await check_wordings(database, forms)  # a reused consent_version stops here
            # Made at its first request (leads/outbound.py); with a captcha, a visitor's
            # submission would be that request, so it is made now.
            http = http_client(settings.delivery_timeout_seconds, transport=http_transport)
            if settings.captcha_provider is not None:
                http.make()
            stack.push_async_callback(http.aclose)
            defences = Defences.from_settings(settings, http, clock=clock)
            stack.push_async_callback(defences.close)
            dispatcher = None
            if settings.dispatcher == "inline":
                dispatcher = Dispatcher(settings, database, forms, http, metrics=metrics)
                dispatcher.start()
                stack.push_async_callback(dispatcher.stop)
            intake = IntakeWriter(database, settings, metrics=metrics)
            intake.start()
            stack.push_async_callback(intake.stop)
            login_throttle = LoginThrottle(settings.rate_limit_storage, clock=clock)
            stack.push_async_callback(login_throttle.aclose)
            app.state.services = Services(
                site, database, intake, defences, dispatcher, clock, login_throttle
            )
            yield

    middleware = [
        # Outermost: the request id first, then the timer around all the rest.
        Middleware(RequestLog, trusted_proxies=settings.trusted_proxies),
        Middleware(RequestTimer, metrics=metrics),
        Middleware(SecurityHeaders),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Idempotency-Key"],
            expose_headers=["Retry-After", "Idempotent-Replayed", "X-Request-ID"],
            max_age=600,
        ),
        Middleware(ContainUnexpected),  # innermost: see its docstring
    ]
    app = Starlette(
        routes=[
            *api.routes,
            *pages.routes,
            *login.routes,
            *health.routes,
            *openapi.routes,
            *staff_api.routes,
            *stats_api.routes,
            *staff_pages.routes,
            *erasures_api.routes,
            *metrics_routes(settings),
            Mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static"),
        ],
        middleware=middleware,
        exception_handlers={
            HTTPProblem: on_problem,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.site = site
    return app


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` (and `leads serve`): settings from the environment."""
    settings = Settings()
    # A worker of `leads serve --workers N` is a new process: it logs only once told how.
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    # A server process: what exists by now (modules, classes, SQLAlchemy's mappings) lives
    # as long as it does. Out of the collector's sight, full collections stay short, so real
    # visitors do not wait behind them under a flood (measured in docs/performance.md).
    # No gc.collect() first: the collections during the imports have run, and a full one
    # here found a few dozen objects for 60-80 ms of the start.
    gc.freeze()
    return app
