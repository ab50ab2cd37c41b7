"""What `leads worker`, `leads outbox ...` and `leads notify-test` do (a text's number
shown masked but its last 3 digits, with the provider's answer)."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.forms import load_forms
from leads.core.routing import NO_ROUTING
from leads.core.vocabulary import Channel, OutboxStatus
from leads.errors import DeliveryError, MessageNotFound, TransientDeliveryError
from leads.notify.channels import ChannelRegistry, NotificationChannel, builtin_channels
from leads.notify.channels.base import close_channels, http_client
from leads.notify.dispatcher import Dispatcher
from leads.settings import Settings
from leads.settings.display import shown_target
from leads.storage import outbox
from leads.storage.database import Database
from leads.storage.types import utcnow


def worker_runner() -> asyncio.Runner:
    """The worker's event loop: uvloop's, as uvicorn picks for `leads serve` (it comes with
    uvicorn[standard]; each wake-up and database hand-off costs less CPU on it), else
    asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed with uvicorn[standard]
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


async def run_worker(settings: Settings) -> None:
    """Deliver notifications until SIGTERM or SIGINT, then shut down gracefully."""
    database = Database.from_settings(settings)
    async with http_client(settings.delivery_timeout_seconds) as http:
        dispatcher = Dispatcher(
            settings,
            database,
            load_forms(settings.forms_file, region=settings.default_region),
            http,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        dispatcher.start()
        print(f"leads worker {dispatcher.name} delivering notifications", file=sys.stderr)
        await stop.wait()
        await dispatcher.stop()
    await database.close()


async def list_outbox(*, session: AsyncSession, statuses: list[str], out: TextIO) -> int:
    """Write the outbox (all of it, or the messages in ``statuses``) as a table."""
    messages = await outbox.list_messages(session=session, statuses=statuses)
    out.write("id\tlead\tkind\tchannel\tstatus\tattempts\tnext_attempt\tlast_error\n")
    for m in messages:
        channel = f"{m.channel}:{shown_target(m.channel, m.target)}" if m.target else m.channel
        pending = m.status == OutboxStatus.PENDING
        next_at = m.next_attempt_at.isoformat(timespec="seconds") if pending else ""
        out.write(
            f"{m.id}\t{m.lead_id or '-'}\t{m.kind}\t{channel}\t{m.status}\t{m.attempts}\t"
            f"{next_at}\t{m.last_error or ''}\n"
        )
    return len(messages)


async def retry_outbox(
    *, session: AsyncSession, ids: list[uuid.UUID], all_dead: bool, now: datetime
) -> int:
    """Send dead letters (or pending messages) again now; how many were queued. Raises
    :class:`MessageNotFound` naming the ids that are not there or delivered already."""
    retried = await outbox.retry_messages(session=session, now=now, ids=ids, all_dead=all_dead)
    missing = set(ids) - {m.id for m in retried}
    if missing:
        raise MessageNotFound(
            "not found or already delivered: " + ", ".join(sorted(str(m) for m in missing))
        )
    return len(retried)


async def notify_test(settings: Settings, out: TextIO) -> bool:
    """Send a test through every configured channel now; print one line per outcome."""
    registry = builtin_channels()
    async with http_client(settings.delivery_timeout_seconds) as http:
        channels = registry.build(settings, http, utcnow)
        try:
            ok = await _send_tests(settings, registry, channels, out)
        finally:
            await close_channels(channels.values())
    return ok


async def _send_tests(
    settings: Settings,
    registry: ChannelRegistry,
    channels: Mapping[Channel, NotificationChannel],
    out: TextIO,
) -> bool:
    ok = True
    for route in registry.routes_for(settings, NO_ROUTING):  # the settings' recipients
        label = (
            f"{route.channel} {shown_target(route.channel, route.target)}"
            if route.target
            else route.channel
        )
        try:
            answer = await channels[route.channel].send_test(route.target, uuid.uuid4())
        except DeliveryError as exc:
            kind = "would retry" if isinstance(exc, TransientDeliveryError) else "permanent"
            out.write(f"{label}: FAILED ({exc}; {kind})\n")
            ok = False
        else:
            note = "" if registry.configured(settings) else NO_INBOX_NOTE
            note += f" ({answer})" if answer else ""
            out.write(f"{label}: delivered{note}\n")
    return ok


NO_INBOX_NOTE = " (no inbox configured: see docs/notifications.md)"
