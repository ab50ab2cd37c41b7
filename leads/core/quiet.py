"""Quiet hours: when no text goes to the front desk's phones (LEADS_SMS_QUIET_HOURS).

``20:00-07:30`` is every night from 20:00 to 07:30 the next morning, in LEADS_TIMEZONE; a
stretch may also lie within one day (``12:00-13:00``). Moments are arguments: nothing here
reads a clock. A text due inside quiet hours waits until they end (:meth:`QuietHours.held_until`).
Wall-clock times are turned into moments with zoneinfo, day by day, so the end follows the
clinic's clock across summer-time changes; an end the change skips maps past the jump.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PATTERN = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")


def parse_span(text: str) -> tuple[time, time]:
    """``HH:MM-HH:MM`` → (start, end); ValueError with a plain reason otherwise."""
    match = PATTERN.fullmatch(text.replace(" ", ""))
    if match is None:
        raise ValueError("must be HH:MM-HH:MM (24-hour clock), such as 20:00-07:30")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = time(h1, m1), time(h2, m2)
    if start == end:
        raise ValueError("starts and ends at the same time; leave it unset for no quiet hours")
    return start, end


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str | None, zone: str) -> QuietHours | None:
        """LEADS_SMS_QUIET_HOURS read in ``zone``; None when unset."""
        if not text:
            return None
        start, end = parse_span(text)
        return cls(start, end, ZoneInfo(zone))

    @property
    def spans_midnight(self) -> bool:
        return self.end < self.start

    def held_until(self, now: datetime) -> datetime | None:
        """The end of the quiet hours ``now`` falls in (UTC), or None outside them."""
        local = now.astimezone(self.zone)
        day, at = local.date(), local.time().replace(tzinfo=None)
        if self.spans_midnight:
            if at >= self.start:
                return self._moment(day + timedelta(days=1))
            if at < self.end:
                return self._moment(day)
            return None
        if self.start <= at < self.end:
            return self._moment(day)
        return None

    def _moment(self, day: date) -> datetime:
        """The end of quiet hours on ``day``, as a UTC moment."""
        wall = datetime.combine(day, self.end)
        # A wall time a summer-time change skips does not exist: fold=0 then maps it past
        # the jump once normalised through UTC.
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def end_text(self) -> str:
        """The end as the clinic reads it: ``07:30``."""
        return f"{self.end:%H:%M}"
