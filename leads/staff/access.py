"""Who is asking: every staff route (API and pages) starts by finding its :class:`Actor`.

An actor comes from an API token (``Authorization: Bearer ...``) or a staff session (the
session cookie, see ``sessions.py``). A bearer header that is sent but not valid is refused
outright, never passed over in favour of a cookie. Failing checks raise
``NotAuthenticated`` (401) or ``NotAllowed`` (403), which reach clients as
application/problem+json.

A cookie is sent by the browser whoever's page asks, so a change made through a session
(POST, PUT, PATCH, DELETE) must also prove it comes from one of our own pages: it carries
the session's CSRF token (header ``X-CSRF-Token`` from our scripts, :func:`require_actor`;
form field ``csrf_token`` from our forms, :func:`require_form_actor`), and its ``Origin``
and ``Sec-Fetch-Site`` headers, when the browser sends them, must say this same origin.
Else ``CsrfFailed`` (403). A bearer token is never sent by a browser on its own, so token
requests need neither. Pages use :func:`require_page_actor`, which sends a browser that is
not signed in to the sign-in page and back."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from leads.core.vocabulary import Role, TokenScope
from leads.errors import CsrfFailed, NotAllowed, NotAuthenticated, SignInRequired
from leads.services import services_of
from leads.staff import sessions, tokens

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    cookie = sessions.cookie_value(request, services_of(request).settings)
    if cookie is not None:
        return await _session_actor(request, cookie)
    return None


async def _session_actor(request: HTTPConnection, cookie: str) -> Actor | None:
    """The signed-in user, or None when the session is over (or never was)."""
    services = services_of(request)
    now = services.now()
    limits = sessions.Limits.from_settings(services.settings)
    async with services.database.reading() as session:
        found = await sessions.live_session(session=session, value=cookie, now=now, limits=limits)
    if found is None:
        return None
    record, user = found
    if sessions.needs_touch(record, now):
        async with services.database.writing() as session:
            await sessions.touch_session(session=session, session_id=record.id, now=now)
    return Actor(
        label=f"user:{user.email}",
        via="session",
        can_write=True,
        is_admin=user.role == Role.ADMIN,
        user_id=user.id,
        email=user.email,
        session_id=record.id,
        csrf_token=record.csrf_token,
    )


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
    if actor.via == "session" and request.scope.get("method") in UNSAFE_METHODS:
        check_same_origin(request)
        check_csrf_token(actor, request.headers.get(CSRF_HEADER))
    return _allowed(actor, write=write, admin=admin)


async def require_form_actor(
    request: HTTPConnection, form: Mapping[str, object], *, admin: bool = False
) -> Actor:
    """The actor behind a form our pages posted, its ``csrf_token`` field checked. A browser
    whose session is over is sent to sign in again (then to the staff area)."""
    actor = await authenticate(request)
    if actor is None:
        raise SignInRequired("/staff")
    if actor.via == "session":
        check_same_origin(request)
        sent = form.get(CSRF_FIELD)
        check_csrf_token(actor, sent if isinstance(sent, str) else None)
    return _allowed(actor, write=True, admin=admin)


async def require_page_actor(request: HTTPConnection, *, admin: bool = False) -> Actor:
    """The actor behind a staff page; a browser not signed in is sent (303) to the sign-in
    page, which brings it back here afterwards."""
    actor = await authenticate(request)
    if actor is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(here)
    return _allowed(actor, write=False, admin=admin)


def own_origins(request: HTTPConnection) -> set[str]:
    """This service's origin as the request names it, and as ``LEADS_PUBLIC_URL`` does."""
    public = urlsplit(services_of(request).settings.public_url)
    return {
        f"{request.url.scheme}://{request.url.netloc}".lower(),
        f"{public.scheme}://{public.netloc}".lower(),
    }


def check_same_origin(request: HTTPConnection) -> None:
    """Refuse what a browser says came from another site. Browsers send ``Origin`` with
    every POST and ``Sec-Fetch-Site`` with every request; when neither is there (an old
    browser, a script) the CSRF token alone decides."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() not in own_origins(request):
        raise CsrfFailed("This request came from another site.")
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        raise CsrfFailed("This request came from another site.")


def check_csrf_token(actor: Actor, sent: str | None) -> None:
    expected = actor.csrf_token or ""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed()


def _allowed(actor: Actor, *, write: bool, admin: bool) -> Actor:
    if write and not actor.can_write:
        raise NotAllowed("this token may only read; create a token with --scope write")
    if admin and not actor.is_admin:
        raise NotAllowed("only an admin may do this")
    return actor
