"""Channels carry a notification somewhere: one module per way out, each behind the one
interface of :mod:`leads.notify.channels.base` and registered under its
:class:`leads.core.vocabulary.Channel`, the name in the outbox row: ``smtp``,
``email_api``, ``webhook`` (one row per URL, the URL in ``target``), ``sms`` (one row per
staff number, the number in ``target``) or ``log`` (used only when no other channel is
configured).

Each raises only our own DeliveryError types: third-party errors are translated in its
module, at the boundary, so the retry policy decides on one vocabulary.
"""

from __future__ import annotations

from functools import cache

from leads.notify.channels import email_api, log, sms, smtp, webhook
from leads.notify.channels.base import (
    ChannelEntry,
    ChannelRegistry,
    Clock,
    Notice,
    NotificationChannel,
    Route,
)

__all__ = [
    "ChannelEntry",
    "ChannelRegistry",
    "Clock",
    "Notice",
    "NotificationChannel",
    "Route",
    "builtin_channels",
]


@cache
def builtin_channels() -> ChannelRegistry:
    """The channels leads ships, in the order a lead's outbox rows are written (and of
    preference for the autoreply: SMTP, then the email API)."""
    registry = ChannelRegistry()
    smtp.register(registry)
    email_api.register(registry)
    webhook.register(registry)
    sms.register(registry)
    log.register(registry)
    return registry
