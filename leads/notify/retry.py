"""When to try a failed delivery again, and when to stop.

After the n-th failed attempt (n = 1, 2, ...), the next attempt waits

    delay = uniform(0, min(MAX_DELAY, base * 2 ** (n - 1)))      ("full jitter")
    delay = max(delay, retry_after)            when the server sent Retry-After

with ``base`` = LEADS_RETRY_BASE_SECONDS (default 30 s). So the first retry comes within
30 s, the second within 1 min, then 2, 4, 8 min ... and never more than 1 hour apart.
Full jitter spreads retries out so that many messages failing together (an inbox outage)
do not all come back at the same instant.

A message whose next attempt would fall later than LEADS_RETRY_GIVE_UP_HOURS (default 72 h)
after it was first scheduled (or after an operator's retry) becomes a dead letter instead.
Permanent failures (SMTP 5xx, HTTP 4xx other than 408/429) are dead letters at once.
Dead letters are never retried automatically: `leads outbox retry` sends them again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_DELAY = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float
    give_up_after: timedelta

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failure."""
        ceiling = min(MAX_DELAY, self.base_seconds * 2 ** max(attempts - 1, 0))
        delay = random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.give_up_after.total_seconds()))
        return delay

    def next_attempt(
        self, *, attempts: int, now: datetime, scheduled_from: datetime, retry_after: float | None
    ) -> datetime | None:
        """When to try again, or None to give up."""
        at = now + timedelta(seconds=self.delay(attempts, retry_after))
        if at > scheduled_from + self.give_up_after:
            return None
        return at


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from an HTTP ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
