"""Request latency for the metrics: each request timed, labelled by its route's template."""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leads.metrics import Metrics

UNMATCHED = "unmatched"  # the route label of a request no route matches (a 404)
TEMPLATE_CACHE = 1024


class RequestTimer:
    """Middleware: each request's duration, labelled with its route's path template (never
    the path itself, which can carry ids), its method and its status class."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        # (path, method) -> template: matching every route again costs a regex per route on
        # every request. Bounded: paths with ids are many; the cache is emptied when full.
        self._templates: dict[tuple[str, str], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The app's routes (scope["app"]), matched before routing rewrites the scope.
        key = (scope.get("root_path", "") + scope["path"], scope["method"])
        route = self._templates.get(key)
        if route is None:
            route = route_template(scope["app"].routes, scope)
            if len(key[0]) <= 200:  # a long path is not kept
                if len(self._templates) >= TEMPLATE_CACHE:
                    self._templates.clear()
                self._templates[key] = route
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.request(route, scope["method"], status, time.perf_counter() - started)


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that serves ``scope`` (``/f/{slug}``), or UNMATCHED."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return _template(route)
        if match is Match.PARTIAL and partial is None:  # the path, another method: a 405
            partial = _template(route)
    return partial or UNMATCHED


def _template(route: BaseRoute) -> str:
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
