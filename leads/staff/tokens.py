"""API tokens for scripts and other systems: `leads token create|list|revoke`.

A token is shown once, when it is made; only its SHA-256 digest is kept (it is 256 random
bits, so a fast digest is as safe as a slow hash, and checking one costs nothing). A
``read`` token may only read; a ``write`` token may also change leads."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import AuditAction, TokenScope
from leads.errors import DuplicateName, TokenNotFound, UsageError
from leads.staff.audit import record_audit
from leads.storage.staff_tables import ApiToken

PREFIX = "leads_"  # so a token pasted somewhere it should not be is recognisable
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# How often a token's "last used" is written: not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    *, session: AsyncSession, name: str, scope: TokenScope, actor: str, now: datetime
) -> str:
    """Store a new token's digest and return the token itself: the only time it is seen."""
    if not NAME.match(name):
        raise UsageError(
            "a token's name is 1-100 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit"
        )
    if await token_named(session=session, name=name) is not None:
        raise DuplicateName(f"there is already a token named {name!r}")
    token = PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(name=name, scope=scope.value, token_hash=token_digest(token), created_at=now)
    session.add(record)
    await record_audit(
        session=session,
        actor=actor,
        action=AuditAction.TOKEN_CREATED,
        now=now,
        detail={"token": name, "scope": scope.value},
    )
    return token


async def token_named(*, session: AsyncSession, name: str) -> ApiToken | None:
    found = await session.scalars(select(ApiToken).where(col(ApiToken.name) == name))
    return found.first()


async def list_tokens(*, session: AsyncSession) -> list[ApiToken]:
    return list((await session.scalars(select(ApiToken).order_by(col(ApiToken.name)))).all())


async def revoke_token(*, session: AsyncSession, name: str, actor: str, now: datetime) -> None:
    """Delete the token: the next request that sends it is refused."""
    record = await token_named(session=session, name=name)
    if record is None:
        raise TokenNotFound(f"no token named {name!r}")
    await session.delete(record)
    await record_audit(
        session=session,
        actor=actor,
        action=AuditAction.TOKEN_REVOKED,
        now=now,
        detail={"token": name},
    )


async def token_for(*, session: AsyncSession, token: str) -> ApiToken | None:
    """The stored token this bearer value is, if any."""
    found = await session.scalars(
        select(ApiToken).where(col(ApiToken.token_hash) == token_digest(token))
    )
    return found.first()


def needs_touch(record: ApiToken, now: datetime) -> bool:
    """Whether "last used" is stale enough to be written again."""
    return record.last_used_at is None or now - record.last_used_at >= LAST_USED_RESOLUTION
