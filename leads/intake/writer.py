"""Group commit: concurrent submissions share transactions, and each still gets its 201 only
after the commit that holds it.

Requests put a :class:`CaptureJob` on a bounded queue and wait. A writer takes everything
waiting (up to ``MAX_BATCH``), stores it in one transaction and answers each request. While
one batch commits, the next one gathers, so under load one commit (one fsync on SQLite)
serves many leads; at rest a batch is a single lead and nothing waits for company.

- SQLite has one writer at a time: one writer task. PostgreSQL runs ``POSTGRES_WRITERS``.
- The queue holds at most LEADS_INTAKE_QUEUE_SIZE jobs. When it is full the request gets
  503 with Retry-After at once: memory stays bounded and the visitor's browser (or the
  site's fetch) can try again, instead of everyone waiting longer and longer.
- On shutdown new submissions get 503, and what is queued is written before the writers stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from leads.errors import IntakeBusy, LeadsError, StorageUnavailable
from leads.intake.capture import CaptureJob, capture_batch
from leads.intake.receipts import Receipt
from leads.metrics import Metrics
from leads.settings import Settings
from leads.storage.consent_tables import Wording
from leads.storage.database import Database

log = logging.getLogger("leads.intake")

MAX_BATCH = 128
POSTGRES_WRITERS = 3

Pending = tuple[CaptureJob, "asyncio.Future[Receipt]"]


class IntakeWriter:
    def __init__(self, database: Database, settings: Settings, *, metrics: Metrics | None = None):
        self.database = database
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(settings.intake_queue_size)
        self._writers: list[asyncio.Task[None]] = []
        self._closed = False
        self._wordings_on_file: set[Wording] = set()  # see capture_batch

    def start(self) -> None:
        count = 1 if self.database.is_sqlite else POSTGRES_WRITERS
        self._writers = [
            asyncio.create_task(self._write_forever(), name=f"leads-intake-{n}")
            for n in range(count)
        ]

    async def capture(self, job: CaptureJob) -> Receipt:
        """Queue the job; return its receipt once its transaction has committed."""
        if self._closed:
            raise IntakeBusy()
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((job, future))
        except asyncio.QueueFull:
            raise IntakeBusy() from None
        # Shielded: if the visitor disconnects, the lead is still written.
        return await asyncio.shield(future)

    async def stop(self) -> None:
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self.settings.shutdown_grace_seconds)
        for writer in self._writers:
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        while not self._queue.empty():  # only if the grace ran out: say so, do not hang
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(StorageUnavailable("shutting down"))

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._write(batch)
            except asyncio.CancelledError:  # shutting down mid-batch: answer, do not hang
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StorageUnavailable("shutting down"))
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Pending]) -> None:
        jobs = [job for job, _ in batch]
        self.metrics.intake_batch(len(jobs))
        try:
            results: list[Receipt | LeadsError] = await capture_batch(
                self.database, jobs, settings=self.settings, on_file=self._wordings_on_file
            )
        except Exception as exc:  # a bug must not stop the writer: fail this batch only
            log.error("intake batch of %d failed: %s", len(batch), type(exc).__name__)
            results = [StorageUnavailable()] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, LeadsError):
                future.set_exception(result)
            else:
                future.set_result(result)
