"""One errors path: problem+json (RFC 9457) for API clients, an HTML page for browsers."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from leads.errors import HTTPProblem

log = logging.getLogger("leads.web")

PROBLEM_JSON = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def wants_html(request: Request) -> bool:
    """Browsers navigating to a page; never the JSON API."""
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def render_problem(request: Request, problem: HTTPProblem) -> Response:
    if wants_html(request):
        templates = request.app.state.templates
        return templates.TemplateResponse(  # type: ignore[no-any-return]
            request,
            "error.html",
            {"problem": problem},
            status_code=problem.status,
            headers=problem.headers,
        )
    return ProblemResponse(problem.body(), status_code=problem.status, headers=problem.headers)


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPProblem)
    if exc.status >= 500:
        log.warning("%s %s: %s (%s)", request.method, request.url.path, exc.code, exc.__cause__)
    return render_problem(request, exc)


class _StarletteProblem(HTTPProblem):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None):
        self.status = status
        self.code = {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
        self.title = detail
        super().__init__(detail, headers=headers)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = {404: "There is nothing at this address."}.get(exc.status_code, exc.detail)
    headers = dict(exc.headers) if exc.headers else None
    return render_problem(request, _StarletteProblem(exc.status_code, detail, headers))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    # Log the type and place only: an exception's text can quote what a visitor typed.
    log.error(
        "unexpected %s on %s %s",
        type(exc).__name__,
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__) if _debug(request) else None,
    )
    return render_problem(request, HTTPProblem())


def _debug(request: Request) -> Any:
    return request.app.debug
