"""The staff dashboard's pages under /staff: one module per page group, each with its
``routes``; ``create_app`` adds them all from here. Every page renders through
``frame.render_page`` (navigation and the delivery banner)."""

from __future__ import annotations

from leads.staff.pages import audit, deliveries, lead, lead_actions, leads, responses, spam

routes = [
    *leads.routes,
    *lead.routes,
    *lead_actions.routes,
    *spam.routes,
    *deliveries.routes,
    *responses.routes,
    *audit.routes,
]
