"""Who is asking: every staff route (API and pages) starts by finding its :class:`Actor`.

An actor comes from an API token (``Authorization: Bearer ...``) or a staff session (the
session cookie). A bearer header that is sent but not valid is refused outright, never
passed over in favour of a cookie. Failing checks raise ``NotAuthenticated`` (401) or
``NotAllowed`` (403), which reach clients as application/problem+json."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from starlette.requests import HTTPConnection

from leads.core.vocabulary import TokenScope
from leads.errors import NotAllowed, NotAuthenticated
from leads.services import services_of
from leads.staff import tokens


@dataclass(frozen=True, slots=True)
class Actor:
    """A member of staff (through their session) or a script (through its token)."""

    label: str  # how the timeline and the audit log name them: user:<email> or token:<name>
    via: Literal["session", "token"]
    can_write: bool
    is_admin: bool = False
    user_id: uuid.UUID | None = None
    email: str | None = None
    session_id: str | None = None  # the session's stored id (its cookie's digest)
    csrf_token: str | None = None


def client_address(request: HTTPConnection) -> str | None:
    return request.client.host if request.client else None


async def authenticate(request: HTTPConnection) -> Actor | None:
    """The actor behind this request, or None when it carries no credentials at all."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise NotAuthenticated("send the token as: Authorization: Bearer <token>")
        return await _token_actor(request, value.strip())
    return None


async def _token_actor(request: HTTPConnection, value: str) -> Actor:
    services = services_of(request)
    now = services.now()
    async with services.database.reading() as session:
        record = await tokens.token_for(session=session, token=value)
    if record is None:
        raise NotAuthenticated("this token is not valid (revoked, or mistyped)")
    if tokens.needs_touch(record, now):
        await _touch_token(request, record.name, now)
    return Actor(
        label=f"token:{record.name}",
        via="token",
        can_write=record.scope == TokenScope.WRITE,
    )


async def _touch_token(request: HTTPConnection, name: str, now: datetime) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    from leads.storage.staff_tables import ApiToken

    async with services_of(request).database.writing() as session:
        await session.execute(
            update(ApiToken).where(col(ApiToken.name) == name).values(last_used_at=now)
        )


async def require_actor(
    request: HTTPConnection, *, write: bool = False, admin: bool = False
) -> Actor:
    """The actor, who must be signed in, and allowed to write or administer if asked."""
    actor = await authenticate(request)
    if actor is None:
        raise NotAuthenticated()
    if write and not actor.can_write:
        raise NotAllowed("this token may only read; create a token with --scope write")
    if admin and not actor.is_admin:
        raise NotAllowed("only an admin may do this")
    return actor
