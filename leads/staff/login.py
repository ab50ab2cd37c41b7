"""Signing in and out: GET/POST /staff/login, POST /staff/logout.

A wrong password and an unknown account get the same answer (status, page, and about the
same time: an unknown account's password is checked against a dummy hash). Failures are
throttled per account and per address (``throttle.py``) before any password is checked.

The sign-in form is protected from cross-site posts (which would sign a victim in to an
attacker's account) by a pre-session token: GET sets a random cookie ``leads_login``
(``__Host-leads_login`` over HTTPS) and puts its HMAC, keyed from the secret key, in a
hidden field; POST needs both to agree, and its ``Origin``/``Sec-Fetch-Site`` to say this
site. Another site can neither read the field nor set the cookie.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.core.vocabulary import AuditAction, LoginOutcome
from leads.errors import CsrfFailed, UsageError
from leads.services import Services, services_of
from leads.staff import accounts, sessions
from leads.staff.access import check_same_origin, require_form_actor
from leads.staff.audit import record_audit
from leads.staff.pagekit import render_staff_page, safe_next, staff_redirect
from leads.storage.staff_tables import User
from leads.web.bodies import read_form_fields

LOGIN_COOKIE = "leads_login"
MISMATCH = "That email and password do not match."
# An argon2id hash (HASHER's parameters) of a random password nobody kept: an unknown
# account's attempt is checked against it, so it takes as long as a real one.
DUMMY_HASH = (
    "$argon2id$v=19$m=19456,t=2,p=1$kmz4OXzSKJR5ZA3pEri6KQ$"
    "+XaHPv+4iJHN9bdfkNq7Gb7vUa/lO1O00mQJ21tDmy8"
)


def _form_token(services: Services, cookie: str) -> str:
    key = hmac.new(services.site.secret_key.encode(), b"leads staff login form", hashlib.sha256)
    return hmac.new(key.digest(), cookie.encode(), hashlib.sha256).hexdigest()


def _login_page(
    request: Request,
    *,
    email: str = "",
    next_path: str,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    services = services_of(request)
    name = sessions.cookie_name(request, services.settings, LOGIN_COOKIE)
    cookie = request.cookies.get(name) or secrets.token_urlsafe(32)
    response = render_staff_page(
        request,
        "staff/login.html",
        {
            "email": email,
            "next": next_path,
            "error": error,
            "login_token": _form_token(services, cookie),
        },
        status_code=status_code,
        headers=headers,
    )
    if name not in request.cookies:
        secure = sessions.is_https(request, services.settings)
        response.set_cookie(name, cookie, path="/", secure=secure, httponly=True, samesite="lax")
    return response


async def login_page(request: Request) -> Response:
    if request.method == "POST":
        return await _sign_in(request)
    # Shown even when signed in: signing in again is how to switch accounts.
    return _login_page(request, next_path=safe_next(request.query_params.get("next")))


def _check_form_token(request: Request, services: Services, sent: object) -> None:
    check_same_origin(request)
    name = sessions.cookie_name(request, services.settings, LOGIN_COOKIE)
    cookie = request.cookies.get(name)
    if not cookie or not isinstance(sent, str):
        raise CsrfFailed("The sign-in page had expired; please try again.")
    if not hmac.compare_digest(sent.encode(), _form_token(services, cookie).encode()):
        raise CsrfFailed("The sign-in page had expired; please try again.")


async def _sign_in(request: Request) -> Response:
    services = services_of(request)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    _check_form_token(request, services, fields.get("login_token"))
    typed = fields.get("email")
    password = fields.get("password")
    email = typed.strip() if isinstance(typed, str) else ""
    password = password if isinstance(password, str) else ""
    next_path = safe_next(fields.get("next"))
    address = services.defences.client_ip(request)

    wait = await services.login_throttle.refusal(email=email, address=address)
    if wait is not None:
        services.metrics.login(LoginOutcome.THROTTLED)
        minutes = max(1, round(wait / 60))
        return _login_page(
            request,
            email=email,
            next_path=next_path,
            error=f"Too many failed sign-ins. Please wait {minutes} minutes and try again.",
            status_code=429,
            headers={"Retry-After": str(wait)},
        )

    user = await _account(services, email)
    stored = user.password_hash if user is not None else DUMMY_HASH
    matches = await asyncio.to_thread(
        accounts.password_matches, stored, password[: accounts.MAX_PASSWORD_LENGTH]
    )
    if user is None or not user.active or not matches:
        services.metrics.login(LoginOutcome.FAILURE)
        await services.login_throttle.failed(email=email, address=address)
        async with services.database.writing() as session:
            await record_audit(
                session=session,
                actor="anonymous",
                action=AuditAction.LOGIN_FAILED,
                now=services.now(),
                address=address,
                # Which account, when there is one; never what was typed.
                detail={"user_id": str(user.id)} if user is not None else {},
            )
        return _login_page(request, email=email, next_path=next_path, error=MISMATCH)
    services.metrics.login(LoginOutcome.SUCCESS)
    return await _signed_in(request, services, user, password, next_path, address)


async def _account(services: Services, email: str) -> User | None:
    try:
        email = accounts.clean_account_email(email)
    except UsageError:
        return None
    async with services.database.reading() as session:
        return await accounts.user_by_email(session=session, email=email)


async def _signed_in(
    request: Request,
    services: Services,
    user: User,
    password: str,
    next_path: str,
    address: str | None,
) -> Response:
    now = services.now()
    new_hash = None
    if accounts.needs_rehash(user.password_hash):  # the parameters were raised since
        new_hash = await asyncio.to_thread(accounts.hash_password, password)
    async with services.database.writing() as session:
        if new_hash is not None:
            user.password_hash = new_hash
            session.add(user)
        value = await sessions.start_session(
            session=session,
            user=user,
            now=now,
            limits=sessions.Limits.from_settings(services.settings),
            address=address,
            replacing=sessions.cookie_value(request, services.settings),
        )
        await record_audit(
            session=session,
            actor=f"user:{user.email}",
            action=AuditAction.LOGIN,
            now=now,
            address=address,
            detail={"user_id": str(user.id)},
        )
    response = staff_redirect(next_path)
    sessions.set_session_cookie(response, request, services.settings, value)
    secure = sessions.is_https(request, services.settings)
    response.delete_cookie(
        sessions.cookie_name(request, services.settings, LOGIN_COOKIE),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    return response


async def logout(request: Request) -> Response:
    services = services_of(request)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    actor = await require_form_actor(request, fields)
    if actor.session_id is not None:
        async with services.database.writing() as session:
            await sessions.end_session(session=session, session_id=actor.session_id)
            await record_audit(
                session=session,
                actor=actor.label,
                action=AuditAction.LOGOUT,
                now=services.now(),
                address=services.defences.client_ip(request),
                detail={"user_id": str(actor.user_id)},
            )
    response = staff_redirect("/staff/login")
    sessions.clear_session_cookie(response, request, services.settings)
    return response


routes = [
    Route("/staff/login", login_page, methods=["GET", "POST"]),
    Route("/staff/logout", logout, methods=["POST"]),
]
