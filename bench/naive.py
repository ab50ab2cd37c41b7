"""The naive reference: ``POST /api/leads`` as a tutorial would write it, the peer a developer
would build. A Starlette app, one SQLModel session and one commit per request, no batching,
no outbox, no email. It validates exactly as leads does (leads' own ``parse_submission``)
and is as durable (SQLite in WAL mode with synchronous=FULL; PostgreSQL with fsync on, as
bench/targets.py starts it), and is served by uvicorn with the options ``leads serve`` uses.

    python bench/naive.py --port 8002 --database sqlite+aiosqlite:///naive.db
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leads.core.forms import load_forms
from leads.errors import InvalidSubmission
from leads.intake.submission import parse_submission


class NaiveLead(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime.datetime
    form: str
    name: str
    email: str | None = Field(default=None, index=True)
    phone: str | None = Field(default=None, index=True)
    preferred_contact: str | None = None
    message: str | None = None
    interest: str | None = None
    consent_version: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_app() -> Starlette:
    url = os.environ["NAIVE_DATABASE_URL"]
    engine = create_async_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    forms = load_forms(None)

    async def receive_lead(request: Request) -> Response:
        try:
            raw = await request.json()
        except ValueError:
            return JSONResponse({"detail": "invalid JSON"}, status_code=400)
        if not isinstance(raw, dict):
            return JSONResponse({"detail": "expected an object"}, status_code=422)
        try:
            submission = parse_submission(raw, forms=forms, default_region="US")
        except InvalidSubmission as exc:
            return JSONResponse({"detail": [e.field for e in exc.errors]}, status_code=422)
        lead = NaiveLead(
            created_at=datetime.datetime.now(datetime.UTC),
            form=submission.form.slug,
            name=submission.name,
            email=submission.email,
            phone=submission.phone,
            preferred_contact=submission.preferred_contact,
            message=submission.message,
            interest=submission.interest,
            consent_version=submission.form.consent_version,
        )
        async with AsyncSession(engine) as session:
            session.add(lead)
            await session.commit()
            await session.refresh(lead)
        return JSONResponse({"id": str(lead.id), "status": "received"}, status_code=201)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.run_sync(SQLModel.metadata.create_all)
        yield
        await engine.dispose()

    return Starlette(
        routes=[
            Route("/api/leads", receive_lead, methods=["POST"]),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--database", required=True, help="an async SQLAlchemy URL")
    args = parser.parse_args()
    os.environ["NAIVE_DATABASE_URL"] = args.database
    # The same options as leads.cli.cmd_serve passes to uvicorn.run (bench/bare.py too).
    # The factory itself, not "naive:create_app": importing this module a second time would
    # declare its table twice.
    uvicorn.run(
        create_app,
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
