"""Where a form's notifications go, when the form says so itself.

A form in LEADS_FORMS_FILE may name its own recipients, each key over the global setting of
its kind, key by key::

    [forms.sports]
    title = "Sports injuries"
    inbox = ["sports@clinic.example", "Dr Lee <lee@clinic.example>"]   # or "a@x, b@y"
    webhook_urls = ["https://crm.clinic.example/hooks/sports"]
    sms_to = ["+12025550143"]

- a key left out: the global setting applies (LEADS_INBOX, LEADS_WEBHOOK_URLS, and the
  SMS channel's numbers), as for a form without routing;
- a list: this form's leads go there, and not to the global recipients of that kind;
- an empty list (or empty text): none of that kind for this form. Leaving a key out
  already means "as everyone else", so an empty list is the only way to say "not this form"
  (say, a form whose leads a CRM takes by webhook and nobody should get by email).

Each value is checked as its setting is (:func:`leads.core.contacts.inbox_address`,
:func:`leads.core.contacts.e164_number`, :func:`leads.core.weburls.webhook_url`), and each
must fit the outbox row's ``target`` (:data:`MAX_TARGET_LENGTH`): a form's whole inbox is
one row's target, written with commas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leads.core.contacts import e164_number, inbox_address
from leads.core.weburls import webhook_url

MAX_TARGET_LENGTH = 500  # OutboxMessage.target
ROUTING_KEYS = ("inbox", "sms_to", "webhook_urls")


@dataclass(frozen=True, slots=True)
class FormRouting:
    """A form's own recipients, by kind; ``None``: the global setting applies."""

    inbox: tuple[str, ...] | None = None
    sms_to: tuple[str, ...] | None = None
    webhook_urls: tuple[str, ...] | None = None

    @property
    def inbox_target(self) -> str | None:
        """The outbox ``target`` of this form's clinic emails (None: LEADS_INBOX's)."""
        return ",".join(self.inbox) if self.inbox else None

    def named(self) -> list[str]:
        """The keys this form gives recipients of its own for (not empty, not left out)."""
        return [key for key in ROUTING_KEYS if getattr(self, key)]


NO_ROUTING = FormRouting()


def inbox_of_target(target: str) -> tuple[str, ...]:
    """A clinic email's recipients from its outbox ``target`` (as :attr:`inbox_target`)."""
    return tuple(part for part in target.split(",") if part)


def routing_from(spec: dict[str, Any]) -> FormRouting:
    """The routing keys of one form's table; ConfigurationError-worthy problems raise
    ValueError with the key and the reason (the caller adds the form)."""
    inbox = _values(spec, "inbox", inbox_address)
    if inbox and len(",".join(inbox)) > MAX_TARGET_LENGTH:
        raise ValueError(
            f"inbox is {len(','.join(inbox))} characters written with commas; at most "
            f"{MAX_TARGET_LENGTH} fit (use a shared mailbox or a list address)"
        )
    return FormRouting(
        inbox=inbox,
        sms_to=_values(spec, "sms_to", e164_number),
        webhook_urls=_values(spec, "webhook_urls", webhook_url),
    )


def _values(spec: dict[str, Any], key: str, check: Callable[[str], str]) -> tuple[str, ...] | None:
    if key not in spec:
        return None
    raw = spec[key]
    if isinstance(raw, str):
        raw = [part for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ValueError(f"{key} must be a list of texts, or one text with commas")
    checked = []
    for item in raw:
        try:
            value = check(item)
        except ValueError as exc:
            raise ValueError(f"{key} {exc}") from None
        if len(value) > MAX_TARGET_LENGTH:
            raise ValueError(f"{key}: each is at most {MAX_TARGET_LENGTH} characters")
        checked.append(value)
    return tuple(checked)
