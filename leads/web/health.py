"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leads.storage.database import Database


async def healthz(request: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers; otherwise 503 so traffic goes elsewhere."""
    database = request.app.state.services.database  # leads.services.Services
    assert isinstance(database, Database)
    if await database.ping():
        return JSONResponse({"status": "ready", "database": "ok"})
    return JSONResponse(
        {"status": "unavailable", "database": "unreachable"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
