"""The baseline: a bare Starlette app that answers ``POST /api/leads`` with 201 after reading
the body, served by uvicorn exactly as ``leads serve`` serves leads (one worker, uvicorn's
default event loop and HTTP implementation, no server header, no proxy headers).

    python bench/bare.py [--port 8001]
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def receive_lead(request: Request) -> Response:
    await request.body()
    return JSONResponse({"id": str(uuid.uuid4()), "status": "received"}, status_code=201)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/leads", receive_lead, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    # The same options as leads.cli.cmd_serve passes to uvicorn.run.
    uvicorn.run(
        "bare:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
