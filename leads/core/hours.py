"""Opening hours, and the speed-to-lead clock counted in them. Pure: every "now" is an
argument.

``LEADS_OPENING_HOURS`` reads ``Mon-Fri 08:00-18:00; Sat 09:00-12:00``: clauses separated
by ``;``, each a set of days (``Mon``, a range ``Mon-Fri``, a list ``Mon,Wed``, or both
``Mon-Wed,Fri``) and one or more intervals (``08:00-12:00,13:00-18:00``; ``24:00`` may end
one). A day named in no clause is closed. The times are wall-clock times in
LEADS_TIMEZONE, so a summer-time change makes that day's open hours one hour longer or
shorter, as the clinic's clock does.

The clock: a lead created at ``c`` is due ``deadline(c, h)``, the moment ``h`` opening hours
after ``c``; a lead created while the clinic is closed starts counting when it opens.
:meth:`OpeningHours.overdue_cutoff` turns that around for the database: a lead is overdue at
``now`` exactly when its ``created_at <= overdue_cutoff(now, h)`` (and it is still waiting,
see :func:`leads.storage.overdue.overdue_condition`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALWAYS = "Mon-Sun 00:00-24:00"
EXAMPLE = "Mon-Fri 08:00-18:00; Sat 09:00-12:00"

_DAY = "|".join(DAYS)
_DAY_ITEM = re.compile(rf"({_DAY})(?:-({_DAY}))?", re.IGNORECASE)
_INTERVAL = re.compile(r"([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")
_MINUTES_PER_DAY = 24 * 60

Span = tuple[datetime, datetime]  # an open stretch, [start, end), in UTC


class OpeningHoursError(ValueError):
    """A value of LEADS_OPENING_HOURS that cannot be read (a setting's error, so a
    ValueError: pydantic words it as one line naming the setting)."""


def _day_index(name: str) -> int:
    return [d.lower() for d in DAYS].index(name.lower())


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def _parse_days(text: str) -> set[int]:
    days: set[int] = set()
    for item in text.split(","):
        match = _DAY_ITEM.fullmatch(item.strip())
        if match is None:
            raise OpeningHoursError(f"{item.strip()!r} is not a day such as Mon or Mon-Fri")
        first = _day_index(match.group(1))
        last = _day_index(match.group(2)) if match.group(2) else first
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))  # Fri-Mon wraps
    return days


def _parse_intervals(text: str) -> list[tuple[int, int]]:
    intervals = []
    for item in text.split(","):
        match = _INTERVAL.fullmatch(item.strip())
        if match is None:
            raise OpeningHoursError(f"{item.strip()!r} is not a time range such as 08:00-18:00")
        start, end = _minutes(*match.group(1, 2)), _minutes(*match.group(3, 4))
        if end > _MINUTES_PER_DAY or start >= end:
            raise OpeningHoursError(f"{item.strip()!r} must end after it starts, by 24:00")
        intervals.append((start, end))
    return intervals


def _merged(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """When the clinic is open: per weekday (0 = Monday) its intervals in minutes since
    local midnight, sorted and not overlapping, in ``zone``."""

    week: tuple[tuple[tuple[int, int], ...], ...]
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str = "UTC") -> OpeningHours:
        """Read ``text`` (see the module docstring); raise :class:`OpeningHoursError`
        saying what is wrong, in one line."""
        per_day: list[list[tuple[int, int]]] = [[] for _ in DAYS]
        clauses = [clause.strip() for clause in text.split(";")]
        if not any(clauses):
            raise OpeningHoursError(f"is empty; write it like {EXAMPLE}")
        for clause in clauses:
            if not clause:
                continue  # a trailing ";"
            days, _, intervals = clause.partition(" ")
            if not intervals.strip():
                raise OpeningHoursError(f"{clause!r} needs days and times, like {EXAMPLE}")
            for day in _parse_days(days):
                per_day[day] += _parse_intervals(intervals.replace(" ", ""))
        return cls(tuple(_merged(day) for day in per_day), ZoneInfo(zone))

    @property
    def always_open(self) -> bool:
        return all(day == ((0, _MINUTES_PER_DAY),) for day in self.week)

    def is_open_day(self, day: date) -> bool:
        """Whether the clinic opens at all on this (local) date."""
        return bool(self.week[day.weekday()])

    def _instant(self, day: date, minute: int) -> datetime:
        if minute == _MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), 0
        local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self.zone)
        return local.astimezone(UTC)

    def _spans_from(self, day: date) -> Iterator[Span]:
        """The open stretches from local ``day`` on, in order and never overlapping (a
        wall-clock time that a summer-time change skips could otherwise make two overlap)."""
        last_end: datetime | None = None
        while True:
            for start_minute, end_minute in self.week[day.weekday()]:
                start = self._instant(day, start_minute)
                end = self._instant(day, end_minute)
                if last_end is not None:
                    start = max(start, last_end)
                if start < end:
                    yield start, end
                    last_end = end
            day += timedelta(days=1)

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date() - timedelta(days=1)

    def opening_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds of opening time in ``[start, end)``; 0 if ``end`` is not after ``start``."""
        total = timedelta()  # summed exactly, in microseconds
        if end <= start:
            return 0.0
        for span_start, span_end in self._spans_from(self._local_day(start)):
            if span_start >= end:
                break
            total += max(timedelta(), min(span_end, end) - max(span_start, start))
        return total.total_seconds()

    def deadline(self, created_at: datetime, hours: float) -> datetime:
        """The moment ``hours`` of opening time after ``created_at`` (UTC)."""
        remaining = timedelta(hours=hours)
        for span_start, span_end in self._spans_from(self._local_day(created_at)):
            if span_end <= created_at:
                continue
            start = max(span_start, created_at)
            if span_end - start >= remaining:
                return start + remaining
            remaining -= span_end - start
        raise AssertionError("unreachable: the spans never end")  # pragma: no cover

    def overdue_cutoff(self, now: datetime, hours: float) -> datetime:
        """The latest creation time whose :meth:`deadline` is at or before ``now``: a lead is
        past its deadline exactly when ``created_at <= overdue_cutoff(now, hours)``."""
        remaining = timedelta(hours=hours)
        days = 8 + int(hours)  # a first guess at how far back; doubled until it holds enough
        while True:
            first = self._local_day(now) - timedelta(days=days)
            spans = []
            for span in self._spans_from(first):
                if span[0] >= now:
                    break
                spans.append(span)
            left = remaining
            for span_start, span_end in reversed(spans):
                end = min(span_end, now)
                if end - span_start >= left:
                    return end - left
                left -= end - span_start
            days *= 2
