"""The staff dashboard's pages under /staff: one module per page group, each with its
``routes``; ``create_app`` adds them all from here."""

from __future__ import annotations

from leads.staff.pages import audit, deliveries, responses, spam

routes = [
    *spam.routes,
    *deliveries.routes,
    *responses.routes,
    *audit.routes,
]
