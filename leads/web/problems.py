"""One errors path: problem+json (RFC 9457) for API clients, an HTML page for browsers.

Both are worded in the visitor's language: the form's that the problem concerns (the
intake sets it), else the one the request is answered in (leads.i18n.choice); on the
staff side, English. Only the human-readable parts change: ``title``, ``detail`` and each
field error's ``message``.
"""

from __future__ import annotations

import logging
import traceback

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads.core.vocabulary import Language
from leads.errors import HTTPProblem, StorageUnavailable
from leads.i18n.catalogs import LanguageWords, words_for
from leads.i18n.choice import LanguageChoice, is_staff_path
from leads.translatable import N_

log = logging.getLogger("leads.web")

PROBLEM_JSON = "application/problem+json"
ERROR_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'"
)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def wants_html(request: Request) -> bool:
    """Browsers navigating to a page; never the JSON API."""
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def error_page(request: Request, problem: HTTPProblem) -> str:
    """The template for a browser: staff are told the database is down in their own words
    (the visitors' page would tell them to call the clinic)."""
    if isinstance(problem, StorageUnavailable) and request.url.path.startswith("/staff"):
        return "staff/unavailable.html"
    return "error.html"


def problem_words(request: Request, problem: HTTPProblem) -> tuple[LanguageWords, str | None]:
    """The words a problem is told in, and the ``Vary`` that choice needs (if any)."""
    site = request.app.state.site  # leads.services.Site (web imports none of the sides)
    choice = LanguageChoice.of(request, site.settings)
    if problem.language is not None and not is_staff_path(request.url.path):
        return words_for(Language(problem.language)), choice.vary() or None
    slug = request.scope.get("path_params", {}).get("slug")
    form = site.forms.forms.get(slug) if isinstance(slug, str) else None
    return choice.words(form), choice.vary() or None


def render_problem(request: Request, problem: HTTPProblem) -> Response:
    words, vary = problem_words(request, problem)
    headers = {**problem.headers, **({"Vary": vary} if vary else {})}
    if wants_html(request):
        templates = request.app.state.site.templates
        assert isinstance(templates, Jinja2Templates)
        return templates.TemplateResponse(
            request,
            error_page(request, problem),
            {"problem": problem, "actor": None, "words": words},
            status_code=problem.status,
            headers={**headers, "Content-Security-Policy": ERROR_PAGE_CSP},
        )
    return ProblemResponse(problem.body(words), status_code=problem.status, headers=headers)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    if exc.status >= 500:
        # The cause's type only: a driver's message can quote the SQL and its values.
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "-"
        log.warning("%s %s: %s (%s)", request.method, request.url.path, exc.code, cause)
    return render_problem(request, exc)


class _StarletteProblem(HTTPProblem):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None):
        self.status = status
        self.code = {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
        self.title = detail
        super().__init__(detail, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route takes at this path. Starlette's 405 names only those of the
    first route that matches it, and a path can have one route per method."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": "GET"})
            if match != Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: N_("There is nothing at this address.")}.get(exc.status_code, exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return render_problem(request, _StarletteProblem(exc.status_code, detail, headers))


def log_unexpected(request: Request, exc: BaseException) -> None:
    # Where it happened, not the exception's text: that can quote what a visitor typed.
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    log.error(
        "unexpected %s on %s %s at %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        where,
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log_unexpected(request, exc)
    return render_problem(request, HTTPProblem())


class ContainUnexpected:
    """Innermost safety net: an unexpected exception becomes a 500 problem here. Left to
    Starlette's outer error middleware, it would be re-raised and the server would log its
    full text."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            request = Request(scope)
            log_unexpected(request, exc)
            if not started:
                await render_problem(request, HTTPProblem())(scope, receive, send)
