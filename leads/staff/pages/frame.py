"""What every dashboard page shares, on top of ``pagekit``: the navigation, the delivery
banner, and how a page is rendered with them. Every page of ``leads/staff/pages/`` renders
through :func:`render_page`, so the banner is on all of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from leads.services import services_of
from leads.staff.access import Actor
from leads.staff.banner import DeliveryBanner, delivery_banner
from leads.staff.pagekit import render_staff_page


@dataclass(frozen=True, slots=True)
class NavLink:
    section: str
    label: str
    href: str
    admin_only: bool = False


NAVIGATION = (
    NavLink("leads", "Leads", "/staff"),
    NavLink("spam", "Spam", "/staff/spam"),
    NavLink("deliveries", "Deliveries", "/staff/deliveries"),
    NavLink("response-times", "Response times", "/staff/response-times"),
    NavLink("audit", "Audit log", "/staff/audit", admin_only=True),
)


def navigation(actor: Actor) -> list[NavLink]:
    return [link for link in NAVIGATION if actor.is_admin or not link.admin_only]


async def render_page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    actor: Actor,
    section: str,
    status_code: int = 200,
    banner: DeliveryBanner | Literal[False] | None = False,
) -> Response:
    """``template`` (which extends ``staff/base.html``) with the navigation, ``section``
    marked as the current one, and the delivery banner when notifications are stuck: read
    here unless the page has read it already (``banner``, None when there is none), in the
    session it read its own content in."""
    if banner is False:
        services = services_of(request)
        async with services.database.reading() as session:
            banner = await delivery_banner(session=session, now=services.now())
    return render_staff_page(
        request,
        template,
        {"nav": navigation(actor), "section": section, "banner": banner, **context},
        actor=actor,
        status_code=status_code,
    )
