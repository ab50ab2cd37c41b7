"""What leads counts, for ``/metrics`` (docs/operations.md, "Metrics").

:class:`Metrics` holds one app's instruments; the code that has something to count calls one
of its plain methods (``metrics.submission(SubmissionOutcome.STORED)``). Every label value is
a fixed vocabulary (``leads.core.vocabulary``, a route's path template from
``leads.web.timing``, an HTTP method from a short list): never a raw path, an id, or
anything a visitor typed.

Where the numbers live:

- One process (tests, ``create_app`` on its own): each :class:`Metrics` keeps its own
  values, so a test process can build as many apps as it likes, each counting alone.
- Under ``leads serve``, which sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory before
  any worker starts: prometheus-client's multiprocess mode. Each worker writes its values to
  files there and a scrape, in any worker or on the LEADS_METRICS_BIND listener, adds up
  every worker's.

The outbox's gauges are not kept here: a scrape reads them from the database
(``leads.storage.backlog``), so every process reports the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from leads.core.vocabulary import Channel, DeliveryOutcome, LoginOutcome, SubmissionOutcome
from leads.storage.backlog import Backlog

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CHANNELS = frozenset(Channel)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)  # up to MAX_BATCH in leads/intake/writer.py


class Metrics:
    """One app's instruments, and the methods that move them."""

    def __init__(self) -> None:
        # prometheus-client decides where values live (memory, or PROMETHEUS_MULTIPROC_DIR's
        # files) when first imported, and `leads serve` sets the directory after the command
        # line's imports: decide again, from the environment as it is now, for this app.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        # registry=None: not in prometheus-client's global registry; each scrape builds its own.
        self._submissions = Counter(
            "leads_submissions", "Submissions by outcome.", ["outcome"], registry=None
        )
        self._deliveries = Counter(
            "leads_deliveries",
            "Notification delivery attempts by channel and outcome.",
            ["channel", "outcome"],
            registry=None,
        )
        self._logins = Counter(
            "leads_staff_logins", "Staff sign-ins by outcome.", ["outcome"], registry=None
        )
        self._batches = Histogram(
            "leads_intake_batch_size",
            "Submissions stored per intake transaction (group commit).",
            buckets=BATCH_BUCKETS,
            registry=None,
        )
        self._requests = Histogram(
            "leads_request_duration_seconds",
            "Time to answer a request, by route template, method and status class.",
            ["route", "method", "status_class"],
            registry=None,
        )
        # Every series of a fixed vocabulary exists from the start, at 0: rate() and alerts
        # need a series before its first event.
        for outcome in SubmissionOutcome:
            self._submissions.labels(outcome.value)
        for channel in Channel:
            for result in DeliveryOutcome:
                self._deliveries.labels(channel.value, result.value)
        for login in LoginOutcome:
            self._logins.labels(login.value)

    @property
    def collectors(self) -> Sequence[Collector]:
        return (self._submissions, self._deliveries, self._logins, self._batches, self._requests)

    def submission(self, outcome: SubmissionOutcome) -> None:
        self._submissions.labels(outcome.value).inc()

    def delivery(self, channel: str, outcome: DeliveryOutcome) -> None:
        """``channel`` as the outbox row has it; a name no release knows counts as ``other``."""
        known = channel if channel in CHANNELS else "other"
        self._deliveries.labels(known, outcome.value).inc()

    def login(self, outcome: LoginOutcome) -> None:
        self._logins.labels(outcome.value).inc()

    def intake_batch(self, size: int) -> None:
        self._batches.observe(size)

    def request(self, route: str, method: str, status: int | None, seconds: float) -> None:
        status_class = f"{status // 100}xx" if status is not None else "5xx"
        method = method if method in METHODS else "OTHER"
        self._requests.labels(route, method, status_class).observe(seconds)


def exposition(metrics: Metrics | None, backlog: Backlog | None) -> bytes:
    """The text a scrape answers: every worker's values under ``leads serve`` (or this app's),
    and the outbox's gauges when ``backlog`` could be read. Reads files: call it off the
    event loop."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    elif metrics is not None:
        for collector in metrics.collectors:
            registry.register(collector)
    if backlog is not None:
        registry.register(_BacklogGauges(backlog))
    return generate_latest(registry)


class _BacklogGauges(Collector):
    def __init__(self, backlog: Backlog):
        self.backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "leads_outbox_pending",
            "Notifications waiting to be delivered (due now or retrying later).",
            value=self.backlog.pending,
        )
        yield GaugeMetricFamily(
            "leads_outbox_oldest_pending_seconds",
            "Age of the oldest pending notification (since queued or retried); 0 if none.",
            value=self.backlog.oldest_pending_seconds,
        )
        yield GaugeMetricFamily(
            "leads_outbox_dead",
            "Dead letters: notifications given up on, until `leads outbox retry`.",
            value=self.backlog.dead,
        )
