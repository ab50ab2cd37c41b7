"""Staff accounts: `leads user add|passwd|disable|list`, and checking a password at sign-in.

Passwords are kept as argon2id hashes (argon2-cffi) with at least OWASP's minimum cost
(19 MiB of memory, 2 passes, 1 lane); a hash made with weaker parameters is replaced at
the next successful sign-in (:func:`needs_rehash`). A password needs 12 characters and
nothing else: length is what makes one hard to guess, composition rules only make people
write them down. Changing a password or disabling an account ends all its sessions at once.
"""

from __future__ import annotations

import functools
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import AuditAction, Role
from leads.errors import DuplicateName, UsageError, UserNotFound
from leads.staff.audit import record_audit
from leads.storage.staff_tables import StaffSession, User

MIN_PASSWORD_LENGTH = 12
# Longer than any passphrase, short enough that hashing one costs what hashing any does.
MAX_PASSWORD_LENGTH = 1024
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)  # argon2id


def clean_account_email(value: str) -> str:
    """The sign-in name: email-validator's normal form, lowercased."""
    try:
        valid = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise UsageError(f"{value!r} is not an email address: {exc}") from exc
    return valid.normalized.lower()


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one hashed. CPU-bound (tens of milliseconds): callers in
    the event loop run it in a thread."""
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than :data:`HASHER`'s."""
    try:
        return HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@functools.cache
def dummy_hash() -> str:
    """What an unknown account's password is checked against, so that answering takes as
    long as for a real account: nobody can tell from the time whether an account exists."""
    return HASHER.hash(secrets.token_urlsafe(16))


async def user_by_email(*, session: AsyncSession, email: str) -> User | None:
    found = await session.scalars(select(User).where(col(User.email) == email.lower()))
    return found.first()


async def _existing(session: AsyncSession, email: str) -> User:
    user = await user_by_email(session=session, email=clean_account_email(email))
    if user is None:
        raise UserNotFound(f"no staff account for {email!r}")
    return user


async def add_user(
    *, session: AsyncSession, email: str, password: str, role: Role, actor: str, now: datetime
) -> User:
    email = clean_account_email(email)
    check_password_rules(password)
    if await user_by_email(session=session, email=email) is not None:
        raise DuplicateName(f"there is already an account for {email!r}")
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role.value,
        created_at=now,
        sessions_valid_from=now,
    )
    session.add(user)
    await session.flush()
    await record_audit(
        session=session,
        actor=actor,
        action=AuditAction.USER_ADDED,
        now=now,
        detail={"user_id": str(user.id), "role": role.value},
    )
    return user


async def end_all_sessions(*, session: AsyncSession, user: User, now: datetime) -> None:
    """Every session of ``user`` is over: deleted, and any started before now refused."""
    await session.execute(delete(StaffSession).where(col(StaffSession.user_id) == user.id))
    user.sessions_valid_from = now
    session.add(user)


async def change_password(
    *, session: AsyncSession, email: str, password: str, actor: str, now: datetime
) -> None:
    check_password_rules(password)
    user = await _existing(session, email)
    user.password_hash = hash_password(password)
    await end_all_sessions(session=session, user=user, now=now)
    await record_audit(
        session=session,
        actor=actor,
        action=AuditAction.USER_PASSWORD_CHANGED,
        now=now,
        detail={"user_id": str(user.id)},
    )


async def disable_user(*, session: AsyncSession, email: str, actor: str, now: datetime) -> None:
    """The account stays (the timeline and the audit log still name it) but cannot sign in."""
    user = await _existing(session, email)
    user.active = False
    await end_all_sessions(session=session, user=user, now=now)
    await record_audit(
        session=session,
        actor=actor,
        action=AuditAction.USER_DISABLED,
        now=now,
        detail={"user_id": str(user.id)},
    )


async def list_users(*, session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(col(User.email)))).all())
