"""The dispatcher: delivers due outbox messages, in ``leads serve`` or in ``leads worker``.

- Woken at once when a submission commits: in-process by :meth:`Dispatcher.wake`, across
  processes and machines by PostgreSQL ``LISTEN``/``NOTIFY``. It also looks every
  ``POLL_SECONDS`` for retries that came due and for leases left by a crashed dispatcher.
- Claims are leases of ``2 x LEADS_DELIVERY_TIMEOUT_SECONDS + 1`` seconds; every attempt is
  cut off at LEADS_DELIVERY_TIMEOUT_SECONDS, so a live dispatcher never outlives its lease.
  A claim never takes a message this dispatcher still has in flight (or has delivered but
  not yet recorded), even if its lease has run out meanwhile by the clock.
- Deliveries run concurrently, in the order they came due, each *route* (a
  channel, and for webhooks its URL) with ``concurrency`` slots of its own: an SMTP server
  that hangs holds SMTP's slots only, and webhooks go on arriving at once. A busy route is
  refilled once half its slots are free, and each turn records what finished and claims
  what is due in one transaction, so one turn serves several messages.
- Its housekeeping queues the daily digest once LEADS_DIGEST_AT has come on an opening day
  (:mod:`leads.notify.digest`; by its ``clock``), purges what is past its retention once a
  day across every dispatcher (:mod:`leads.storage.retention`), alerts the admins when
  notifications stall (:mod:`leads.notify.alerts`), and hourly forgets expired keys.
- :meth:`stop` lets in-flight deliveries finish for LEADS_SHUTDOWN_GRACE_SECONDS, then
  cancels the rest and releases their claims so another dispatcher can take them at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.forms import FormCatalog
from leads.core.vocabulary import REPLAY_WINDOW, MessageKind
from leads.errors import StorageUnavailable
from leads.metrics import Metrics
from leads.notify import digest
from leads.notify.alerts import Alerts
from leads.notify.channels import Clock
from leads.notify.channels.base import ChannelsOverride
from leads.notify.delivery import Claimed, Delivery, Outcome
from leads.outbound import HTTPClient
from leads.settings import Settings
from leads.storage import outbox, outcomes
from leads.storage.database import Database
from leads.storage.leads import delete_expired_idempotency_keys
from leads.storage.models import Lead, OutboxMessage
from leads.storage.retention import purge_once_a_day
from leads.storage.types import utcnow

log = logging.getLogger("leads.notify")

POLL_SECONDS = 2.0
CANCEL_WAIT_SECONDS = 1.0
HOUSEKEEPING_SECONDS = 3600.0
CONCURRENCY = 8  # deliveries at once per route
CLAIM_WINDOW = 4  # a claim takes up to this many times ``concurrency`` due rows


class Dispatcher:
    """Delivers due messages through the channels the settings configure; ``channels``
    stands in for some of them (see :class:`leads.notify.delivery.Delivery`), and ``clock``
    says what time it is."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        forms: FormCatalog,
        http: HTTPClient,
        *,
        poll_seconds: float = POLL_SECONDS,
        concurrency: int = CONCURRENCY,
        channels: ChannelsOverride | None = None,
        clock: Clock = utcnow,
        metrics: Metrics | None = None,
    ):
        self.settings = settings
        self.database = database
        self.forms = forms
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=2 * settings.delivery_timeout_seconds + 1)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], tuple[uuid.UUID, outbox.Route]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._next_housekeeping = 0.0
        self._outcomes: list[tuple[uuid.UUID, Outcome]] = []  # finished, not recorded yet
        self.clock = clock
        self._opening = settings.opening()
        self._digest_settled: date | None = None  # the last day whose digest is queued
        self._purge_settled: date | None = None  # the last (UTC) day purged, here or elsewhere
        self._delivery = Delivery(
            settings,
            forms,
            http,
            worker=self.name,
            channels=channels,
            clock=clock,
            metrics=metrics or Metrics(),
            database=database,  # a text's hand-over marks (leads/notify/handovers.py)
        )
        self._alerts = Alerts(settings, database, self._delivery.channels, clock)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._runner = asyncio.create_task(self.run(), name="leads-dispatcher")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._runner is not None:
            await self._runner
        abandoned: list[uuid.UUID] = []
        if self._inflight:
            _, unfinished = await asyncio.wait(
                self._inflight, timeout=self.settings.shutdown_grace_seconds
            )
            abandoned = [self._inflight[task][0] for task in unfinished]
            for task in unfinished:
                task.cancel()
            if unfinished:
                # A cancelled SMTP send may still say QUIT to a stalled server: don't wait.
                await asyncio.wait(unfinished, timeout=CANCEL_WAIT_SECONDS)
        await self._write_outcomes()  # what finished is recorded before we go
        await self._delivery.aclose()  # idle SMTP sessions say QUIT
        if abandoned:
            try:
                async with self.database.writing() as session:
                    await outbox.release_claims(session=session, ids=abandoned, worker=self.name)
            except StorageUnavailable:
                log.warning("could not release %d claims; their leases will expire", len(abandoned))
            log.info("shutdown: released %d unfinished deliveries", len(abandoned))

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen()) if not self.database.is_sqlite else None
        try:
            while not self._stopping.is_set():
                try:
                    await self._turn()
                except Exception as exc:  # one bad turn must not stop delivery for good
                    log.error("outbox: dispatcher turn failed (%s)", type(exc).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)

    async def _turn(self) -> None:
        """Record what finished and claim what is due (one transaction), start delivering
        it; else sleep."""
        self._wake.clear()
        busy = collections.Counter(route for _, route in self._inflight.values())
        turn = await self._record_and_claim(busy)
        if turn is None:
            # Not recorded (the database is busy or away): claim nothing until it is, or a
            # lease running out meanwhile could hand us back a message we already delivered.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)
            return
        claimed, more, due = turn
        for claim in claimed:
            message = claim.message
            task = asyncio.create_task(self._deliver(claim))
            self._inflight[task] = (message.id, (str(message.channel), message.target))
            task.add_done_callback(self._finished)
        if claimed and more:
            return  # there may be more waiting
        await self._housekeeping()
        # A full route's messages wait for one of its deliveries to finish, which wakes us.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._idle_seconds(due))

    def _idle_seconds(self, due: datetime | None) -> float:
        """How long to sleep: until the next retry comes due (``due``, of a route with a
        free slot), at most ``poll_seconds``."""
        if due is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.05, (due - self.clock()).total_seconds()))

    async def _housekeeping(self) -> None:
        """Chores that belong to no request: the daily digest when it is due (looked at every
        turn, by the clock), the daily purge, alerts when notifications stall
        (:mod:`leads.notify.alerts`, every half minute by the clock), and hourly, forgetting
        expired Idempotency-Keys."""
        await self._queue_digest()
        await self._purge_daily()
        await self._alerts.check()
        if time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        try:
            async with self.database.writing() as session:
                await delete_expired_idempotency_keys(
                    session=session, before=self.clock() - REPLAY_WINDOW
                )
        except StorageUnavailable:
            log.warning("housekeeping: database unavailable; will try again")

    async def _queue_digest(self) -> None:
        """Queue today's digest once it is due (see :mod:`leads.notify.digest`)."""
        now = self.clock()
        day = digest.due_day(self.settings, self._opening, now)
        if day is None or day == self._digest_settled:
            return
        try:
            async with self.database.writing() as session:
                queued = await digest.queue_digest(
                    session=session, settings=self.settings, day=day, now=now
                )
        except StorageUnavailable:
            log.warning("digest: database unavailable; will try again")
            return
        self._digest_settled = day
        if queued:
            self.wake()

    async def _purge_daily(self) -> None:
        """Today's retention purge, unless this dispatcher saw it done today (by whom ever)."""
        now = self.clock()
        day = now.astimezone(UTC).date()
        if day == self._purge_settled:
            return
        try:
            async with self.database.writing() as session:
                await purge_once_a_day(session=session, settings=self.settings, now=now)
        except StorageUnavailable:
            log.warning("retention: database unavailable; will try again")
            return
        self._purge_settled = day

    async def _deliver(self, claim: Claimed) -> None:
        outcome = await self._delivery.attempt(claim)
        # Only now look up the list: a turn swaps it while deliveries run, and an
        # outcome appended to the swapped-out list would never be recorded (and its message
        # would be sent again when the lease ran out).
        self._outcomes.append((claim.message.id, outcome))

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A delivery is done: turn again (record it, refill its route's slots) once half
        of its route's slots are free, so a busy route is refilled a few messages per claim
        rather than one claim (and one outcome write) per message."""
        _, route = self._inflight.pop(task, (None, None))
        still = sum(1 for _, r in self._inflight.values() if r == route)
        if still <= self.concurrency // 2:
            self._wake.set()

    async def _record_and_claim(
        self, busy: Mapping[outbox.Route, int]
    ) -> tuple[list[Claimed], bool, datetime | None] | None:
        """In one transaction: record every finished delivery (group commit, again), then
        claim due messages for the routes with free slots, with the leads they announce.
        Returns the claims, whether there may be more (the claim's window was full), and
        else when the next message of a route with a free slot comes due (None: none
        waits); None if nothing could be recorded or claimed (the outcomes are kept for
        the next try)."""
        now = self.clock()
        window = CLAIM_WINDOW * self.concurrency
        changes, self._outcomes = self._outcomes, []
        # Never again what is still ours: in flight, or finished and being recorded.
        ours = [i for i, _ in self._inflight.values()] + [i for i, _ in changes]
        try:
            async with self.database.writing() as session:
                if changes:
                    await outcomes.record_outcomes(
                        session=session,
                        worker=self.name,
                        now=now,
                        outcomes=[outcome for _, outcome in changes],
                    )
                claim = await outbox.claim_due_with_leads(
                    session=session,
                    worker=self.name,
                    now=now,
                    lease_until=now + self.lease,
                    limit=window,
                    per_route=self.concurrency,
                    in_flight=busy,
                    excluding=ours,
                )
                taken = claim.taken
                more = len(taken) >= window
                claimed = await self._subjects(session, taken, now) if taken else []
                due = None
                if not more and claim.waiting:  # the turn will sleep: until when
                    due = await outbox.next_due(session=session, skipping=self._full(busy, taken))
        except Exception as exc:  # kept and tried again next turn; leases cover a crash
            self._outcomes = changes + self._outcomes
            if not isinstance(exc, StorageUnavailable):
                # Not the database being away but this claim failing: record what finished
                # on its own, so a claim that keeps failing holds no finished delivery back
                # (its message would stay claimed, and be sent again by whoever took over).
                await self._write_outcomes()
                raise
            if changes:
                log.warning(
                    "outbox: %d outcomes not recorded yet (database unavailable)", len(changes)
                )
            else:
                log.warning("outbox: database unavailable; will try again")
            return None
        # Fewer than the window: claim_due sought into every route with a free slot, so
        # nothing more is claimable until a delivery finishes (which wakes us).
        return claimed, more, due

    def _full(
        self, busy: Mapping[outbox.Route, int], taken: list[tuple[OutboxMessage, Lead | None]]
    ) -> list[outbox.Route]:
        """The routes with no free slot once ``taken`` is in flight too."""
        after = collections.Counter(busy)
        after.update((str(m.channel), m.target) for m, _ in taken)
        return [route for route, n in after.items() if n >= self.concurrency]

    async def _subjects(
        self,
        session: AsyncSession,
        claimed: list[tuple[OutboxMessage, Lead | None]],
        now: datetime,
    ) -> list[Claimed]:
        """The claimed messages with what they announce: their leads (read with them), a
        follow-up's enquiry, a digest's list, whether their webhook was switched off."""
        messages = [m for m, _ in claimed]
        enquiries = await outbox.load_enquiries(session=session, messages=messages)
        listed = (
            await digest.load_digest(
                session=session, settings=self.settings, forms=self.forms, now=now
            )
            if any(m.kind == MessageKind.DIGEST for m in messages)
            else None
        )
        # Only messages with a target (a webhook URL) can have been switched off.
        disabled = (
            await outbox.disabled_webhooks(session=session)
            if any(m.target is not None for m in messages)
            else set()
        )
        return [
            Claimed(
                m,
                lead,
                enquiries.get(m.enquiry_id) if m.enquiry_id else None,
                m.target in disabled,
                listed if m.kind == MessageKind.DIGEST else None,
            )
            for m, lead in claimed
        ]

    async def _write_outcomes(self) -> bool:
        """Record every finished delivery in one transaction, claiming nothing (at stop, and
        when a turn's claim failed; a turn records them with its claim). False if they could
        not be recorded."""
        if not self._outcomes:
            return True
        changes, self._outcomes = self._outcomes, []
        try:
            async with self.database.writing() as session:
                await outcomes.record_outcomes(
                    session=session,
                    worker=self.name,
                    now=self.clock(),
                    outcomes=[outcome for _, outcome in changes],
                )
        except Exception as exc:  # kept and tried again next turn; leases cover a crash
            self._outcomes = changes + self._outcomes
            log.warning(
                "outbox: %d outcomes not recorded yet (%s)", len(changes), type(exc).__name__
            )
            return False
        return True

    async def _listen(self) -> None:
        """LISTEN on PostgreSQL so a commit anywhere wakes this dispatcher; reconnect if the
        connection drops (polling covers the gap)."""
        import asyncpg  # type: ignore[import-untyped]  # PostgreSQL's only: not loaded on SQLite

        url = make_url(self.settings.database_url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stopping.is_set():
            try:
                await self._listen_once(dsn)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                log.warning("outbox: LISTEN connection lost; polling until it is back")
                await asyncio.sleep(self.poll_seconds)

    async def _listen_once(self, dsn: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(dsn, timeout=5)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda *_: lost.set())
            await connection.add_listener(outbox.NOTIFY_CHANNEL, lambda *_: self._wake.set())
            self._wake.set()  # catch up on anything committed while we were not listening
            while not (lost.is_set() or self._stopping.is_set() or connection.is_closed()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.poll_seconds)
        finally:
            if not connection.is_closed():
                await connection.close()
