"""Channels carry a notification somewhere. Each raises only our own DeliveryError types:
third-party errors are translated here, at the boundary, so the retry policy decides on
one vocabulary.

A channel is named in the outbox row: ``smtp``, ``email_api``, ``webhook`` (one row per URL,
the URL in ``target``) or ``log`` (no channel configured).
"""

from __future__ import annotations

from dataclasses import dataclass

from leads.settings import Settings


@dataclass(frozen=True, slots=True)
class Route:
    """One place a new lead's notification goes."""

    channel: str
    target: str | None = None


def routes_for(settings: Settings) -> list[Route]:
    """Where notifications go with these settings; the log when nothing is configured."""
    routes: list[Route] = []
    if settings.smtp_url is not None:
        routes.append(Route("smtp"))
    if settings.email_api is not None:
        routes.append(Route("email_api"))
    routes += [Route("webhook", url) for url in settings.webhook_urls]
    return routes or [Route("log")]


def email_route(settings: Settings) -> Route | None:
    """The channel for an autoreply: SMTP if configured, else the email API."""
    if settings.smtp_url is not None:
        return Route("smtp")
    if settings.email_api is not None:
        return Route("email_api")
    return None
