"""What request handlers reach, typed: the parts ``create_app`` builds (:class:`Site`) and the
ones its lifespan opens (:class:`Services`). Handlers get them through :func:`site_of` and
:func:`services_of`, so mypy checks every use, instead of reading untyped ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.requests import HTTPConnection
from starlette.templating import Jinja2Templates

from leads.abuse.clock import Clock
from leads.core.forms import FormCatalog
from leads.intake.defence import Defences
from leads.intake.writer import IntakeWriter
from leads.metrics import Metrics
from leads.notify.dispatcher import Dispatcher
from leads.settings import Settings
from leads.staff.throttle import LoginThrottle
from leads.storage.database import Database


@dataclass(frozen=True, slots=True)
class Site:
    """Built with the app, before anything is opened: enough to render any page."""

    settings: Settings
    forms: FormCatalog
    templates: Jinja2Templates
    metrics: Metrics = field(default_factory=Metrics)  # this app's counters (/metrics)

    @property
    def secret_key(self) -> str:
        """The key that signs form tokens; create_app has made sure there is one."""
        assert self.settings.secret_key is not None
        return self.settings.secret_key.get_secret_value()


@dataclass(frozen=True, slots=True)
class Services:
    """Opened by the lifespan: the database, the intake writer, the defences, (with
    ``LEADS_DISPATCHER=inline``) this process's dispatcher, and the sign-in throttle."""

    site: Site
    database: Database
    intake: IntakeWriter
    defences: Defences
    dispatcher: Dispatcher | None
    clock: Clock  # what "now" is for every handler (a test's clock, or the system's)
    login_throttle: LoginThrottle

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    @property
    def settings(self) -> Settings:
        return self.site.settings

    @property
    def metrics(self) -> Metrics:
        return self.site.metrics

    @property
    def forms(self) -> FormCatalog:
        return self.site.forms


def site_of(request: HTTPConnection) -> Site:
    site = request.app.state.site
    assert isinstance(site, Site), "create_app sets app.state.site"
    return site


def services_of(request: HTTPConnection) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services), "the lifespan sets app.state.services"
    return services
