"""Staff sessions: server-side rows, a random cookie that names one.

The cookie's value is ``secrets.token_urlsafe(32)``; the row's id is its SHA-256, so the
database holds nothing a thief could send back. The cookie is HttpOnly, SameSite=Lax and
Path=/; when the service is reached over HTTPS (the request, or ``LEADS_PUBLIC_URL``) it is
also Secure and named ``__Host-leads_session``, which browsers only accept from this very
host over HTTPS, so no other subdomain can plant one.

A session is over when its user is disabled, when it started before the user's
``sessions_valid_from`` (a password change), after ``LEADS_SESSION_IDLE_MINUTES`` without a
request (``last_seen_at``, written at most once a minute), or ``LEADS_SESSION_MAX_HOURS``
after sign-in (``expires_at``), whichever comes first.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from starlette.requests import HTTPConnection
from starlette.responses import Response

from leads.settings import Settings
from leads.storage.staff_tables import StaffSession, User

COOKIE = "leads_session"
SECURE_COOKIE = "__Host-leads_session"
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def session_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def is_https(request: HTTPConnection, settings: Settings) -> bool:
    """Over HTTPS, as the browser sees it (a TLS proxy in front makes the request plain)."""
    return request.url.scheme == "https" or settings.public_url.startswith("https://")


def cookie_name(request: HTTPConnection, settings: Settings, base: str = COOKIE) -> str:
    return f"__Host-{base}" if is_https(request, settings) else base


def cookie_value(request: HTTPConnection, settings: Settings) -> str | None:
    return request.cookies.get(cookie_name(request, settings)) or None


def set_session_cookie(
    response: Response, request: HTTPConnection, settings: Settings, value: str
) -> None:
    # No Max-Age: the cookie goes when the browser closes; the row's limits apply anyway.
    response.set_cookie(
        cookie_name(request, settings),
        value,
        path="/",
        secure=is_https(request, settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: HTTPConnection, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(request, settings),
        path="/",
        secure=is_https(request, settings),
        httponly=True,
        samesite="lax",
    )


@dataclass(frozen=True, slots=True)
class Limits:
    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_max_hours),
        )


async def start_session(
    *,
    session: AsyncSession,
    user: User,
    now: datetime,
    limits: Limits,
    address: str | None,
    replacing: str | None = None,
) -> str:
    """A new session for ``user``; returns the cookie's value. ``replacing`` is the cookie
    the browser sent, if any: that session ends, so an id planted before sign-in is useless."""
    if replacing:
        await end_session(session=session, session_id=session_digest(replacing))
    # Sweep what is over anyway, so the table holds only live sessions and recent ones.
    await session.execute(
        delete(StaffSession).where(
            (col(StaffSession.expires_at) <= now)
            | (col(StaffSession.last_seen_at) <= now - limits.idle)
        )
    )
    value = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            id=session_digest(value),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + limits.absolute,
            address=address,
        )
    )
    return value


def is_current(record: StaffSession, user: User, *, now: datetime, limits: Limits) -> bool:
    return (
        user.active
        and record.created_at >= user.sessions_valid_from
        and now < record.expires_at
        and now - record.last_seen_at < limits.idle
    )


async def live_session(
    *, session: AsyncSession, value: str, now: datetime, limits: Limits
) -> tuple[StaffSession, User] | None:
    """The session this cookie names and its user, if it is not over: one statement (every
    staff request asks this first)."""
    found = (
        await session.execute(
            select(StaffSession, User)
            .join(User, col(User.id) == col(StaffSession.user_id))
            .where(col(StaffSession.id) == session_digest(value))
        )
    ).first()
    if found is None:
        return None
    record, user = found
    if not is_current(record, user, now=now, limits=limits):
        return None
    return record, user


def needs_touch(record: StaffSession, now: datetime) -> bool:
    return now - record.last_seen_at >= LAST_SEEN_RESOLUTION


async def touch_session(*, session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.execute(
        update(StaffSession).where(col(StaffSession.id) == session_id).values(last_seen_at=now)
    )


async def end_session(*, session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(StaffSession).where(col(StaffSession.id) == session_id))
