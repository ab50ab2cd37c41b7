"""What every staff page shares: its headers, how it is rendered, where it may send you.

Staff pages show patients' details, so they are never cached (``Cache-Control: no-store``),
never framed (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), and run nothing but
our own files (a CSP without ``unsafe-inline``). Every staff page goes through
:func:`render_staff_page` or :func:`staff_redirect`, which set them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from leads.services import site_of
from leads.staff.access import Actor

STAFF_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STAFF_HEADERS = {
    "Content-Security-Policy": STAFF_CSP,
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
HOME = "/staff"


def render_staff_page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    actor: Actor | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A template under ``templates/staff/`` with the staff headers. ``actor`` (the one
    signed in, if any) gives the layout its sign-out button and its CSRF token."""
    return site_of(request).templates.TemplateResponse(
        request,
        template,
        {"actor": actor, "csrf_token": actor.csrf_token if actor else None, **(context or {})},
        status_code=status_code,
        headers={**STAFF_HEADERS, **(headers or {})},
    )


def staff_redirect(location: str) -> RedirectResponse:
    """303 See Other: after a form, the browser GETs ``location``."""
    return RedirectResponse(location, status_code=303, headers=STAFF_HEADERS)


def safe_next(value: object) -> str:
    """``value`` if it is a path on this site, else the staff home. Refused: anything with a
    scheme or a host (``https://evil.example``, ``javascript:...``), a path a browser reads
    as a host (``//evil.example``, ``/\\evil.example``), any backslash or control character."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > 2000:
        return HOME
    if value.startswith("//") or "\\" in value:
        return HOME
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return value
