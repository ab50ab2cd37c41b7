"""Where each form's notifications go, as `leads check` prints it: one line per form.

::

    form dry-needling: email -> LEADS_INBOX (2 addresses); webhooks -> LEADS_WEBHOOK_URLS (1);
        texts -> none
    form sports: email -> form inbox (1: s***@clinic.example); webhooks -> none; texts -> none

(the first is one line).

Each kind of recipient is told from the routes a new lead of the form would get
(:meth:`ChannelRegistry.routes_for`), so the line says what will happen, not what the file
asks for: ``none`` when no route of that kind is written (the form's list is empty, or no
channel that sends that kind is configured). Recipients named by the settings are counted;
a form's own are counted and shown masked: an address as ``s***@clinic.example``, a URL as
the settings' display shows it (no credentials, no query), a number with all but its last
three digits hidden.
"""

from __future__ import annotations

from leads.core.forms import FormCatalog
from leads.core.routing import FormRouting
from leads.notify.channels import ChannelRegistry, Route, builtin_channels
from leads.settings import Settings, redact_url
from leads.settings.display import masked_address

# What the line calls each kind, the FormRouting key it reads, and the setting it defaults to.
KINDS = (
    ("email", "inbox", "LEADS_INBOX"),
    ("webhooks", "webhook_urls", "LEADS_WEBHOOK_URLS"),
    ("texts", "sms_to", "LEADS_SMS_TO"),
)


def route_lines(
    settings: Settings, forms: FormCatalog, registry: ChannelRegistry | None = None
) -> list[str]:
    """One line per form, in the order of their slugs."""
    registry = registry or builtin_channels()
    lines = []
    for slug, form in sorted(forms.forms.items()):
        routes = registry.routes_for(settings, form.routing)
        parts = [
            _part(label, key, setting, routes, registry, form.routing, settings)
            for label, key, setting in KINDS
        ]
        lines.append(f"form {slug}: " + "; ".join(parts))
    return lines


def _part(
    label: str,
    key: str,
    setting: str,
    routes: list[Route],
    registry: ChannelRegistry,
    routing: FormRouting,
    settings: Settings,
) -> str:
    readers = registry.readers(key)
    chosen = [route for route in routes if route.channel in readers]
    if not chosen:
        return f"{label} -> none"
    own: tuple[str, ...] | None = getattr(routing, key)
    if key == "inbox":
        recipients = own if own is not None else settings.inbox
    else:  # one route per recipient, the recipient its target
        recipients = tuple(dict.fromkeys(route.target for route in chosen if route.target))
    count = len(recipients)
    if own is None:
        unit = (" address" if count == 1 else " addresses") if key == "inbox" else ""
        return f"{label} -> {setting} ({count}{unit})"
    shown = ", ".join(masked(key, recipient) for recipient in recipients)
    return f"{label} -> form {key} ({count}: {shown})"


def masked(key: str, recipient: str) -> str:
    """A recipient as the check shows it: enough to recognise, not to copy."""
    if key == "inbox":
        return masked_address(recipient)
    if key == "webhook_urls":
        return redact_url(recipient)
    return f"***{recipient[-3:]}"
