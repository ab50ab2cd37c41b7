"""Opening hours and the speed-to-lead clock (leads/core/hours.py): reading the setting,
and the three ways of counting (elapsed opening time, deadline, overdue cutoff) agreeing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leads.core.hours import ALWAYS, OpeningHours, OpeningHoursError

NY = "America/New_York"
CLINIC = "Mon-Fri 08:00-18:00; Sat 09:00-12:00"


def at(text: str, zone: str = NY) -> datetime:
    """A local wall-clock time (``2026-03-06 17:00``) in ``zone``, as an aware UTC moment."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
hour_counts = st.floats(min_value=0.01, max_value=80, allow_nan=False)
schedules = st.sampled_from(
    [
        CLINIC,
        ALWAYS,
        "Mon 08:00-12:00,13:00-18:00; Wed,Fri 00:00-24:00",
        "Sat-Mon 01:30-02:30,02:45-03:15",  # inside the summer-time changes (Sundays)
        "Tue 23:59-24:00",
    ]
)
zones = st.sampled_from([NY, "Europe/London", "UTC", "Australia/Lord_Howe"])


# --- reading the setting -------------------------------------------------------------------


def test_days_ranges_lists_and_several_intervals() -> None:
    hours = OpeningHours.parse("Mon-Wed,Fri 08:00-12:00,13:00-18:00; Sat 09:00-24:00")
    assert hours.week[0] == hours.week[2] == hours.week[4] == ((480, 720), (780, 1080))
    assert hours.week[3] == ()
    assert hours.week[6] == ()
    assert hours.week[5] == ((540, 1440),)
    assert OpeningHours.parse("Fri-Mon 10:00-11:00").week == (
        ((600, 660),),
        (),
        (),
        (),
        ((600, 660),),
        ((600, 660),),
        ((600, 660),),
    )


def test_overlapping_and_repeated_intervals_are_merged() -> None:
    hours = OpeningHours.parse("Mon 08:00-12:00,11:00-13:00; Mon 13:00-14:00")
    assert hours.week[0] == ((480, 840),)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("Mon-Fri", "needs days and times"),
        ("Mon-Fri 8-18", "'8-18' is not a time range"),
        ("Monday 08:00-18:00", "'Monday' is not a day"),
        ("Mon 18:00-08:00", "must end after it starts"),
        ("Mon 08:00-24:30", "by 24:00"),
        ("Mon 24:00-24:00", "must end after it starts"),
    ],
)
def test_a_bad_value_says_what_is_wrong_in_one_line(text: str, says: str) -> None:
    with pytest.raises(OpeningHoursError) as caught:
        OpeningHours.parse(text)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


# --- examples ------------------------------------------------------------------------------


def test_a_lead_on_friday_evening_is_due_on_monday_morning() -> None:
    hours = OpeningHours.parse("Mon-Fri 08:00-18:00", NY)
    created = at("2026-03-06 17:00")  # Friday, an hour before closing
    assert hours.deadline(created, 4) == at("2026-03-09 11:00")  # Monday
    assert hours.opening_seconds_between(created, at("2026-03-09 11:00")) == 4 * 3600
    assert hours.overdue_cutoff(at("2026-03-09 11:00"), 4) == created


def test_a_lead_at_night_starts_counting_at_opening() -> None:
    hours = OpeningHours.parse(CLINIC, NY)
    night = at("2026-03-04 23:10")
    assert hours.deadline(night, 2) == at("2026-03-05 10:00")
    # Everything created from closing time until it opens again has the same deadline.
    assert hours.deadline(at("2026-03-04 18:00"), 2) == at("2026-03-05 10:00")
    assert hours.overdue_cutoff(at("2026-03-05 10:00"), 2) == at("2026-03-05 08:00")
    assert hours.opening_seconds_between(night, at("2026-03-05 07:59")) == 0


def test_saturday_morning_then_closed_on_sunday() -> None:
    hours = OpeningHours.parse(CLINIC, NY)
    assert hours.deadline(at("2026-03-07 11:00"), 4) == at("2026-03-09 11:00")
    assert hours.is_open_day(date(2026, 3, 7))
    assert not hours.is_open_day(date(2026, 3, 8))


def test_the_spring_forward_night_is_an_hour_shorter() -> None:
    hours = OpeningHours.parse(ALWAYS, NY)
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT; the local day has 23 hours.
    day = hours.opening_seconds_between(at("2026-03-08 00:00"), at("2026-03-09 00:00"))
    assert day == 23 * 3600
    nights = OpeningHours.parse("Sun 01:00-04:00", NY)
    assert nights.opening_seconds_between(at("2026-03-08 00:00"), at("2026-03-09 00:00")) == 7200


def test_the_fall_back_day_is_an_hour_longer() -> None:
    hours = OpeningHours.parse("Sun 00:00-24:00", NY)
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST.
    day = hours.opening_seconds_between(at("2026-10-31 12:00"), at("2026-11-02 12:00"))
    assert day == 25 * 3600


def test_a_skipped_wall_clock_time_is_never_counted_twice() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: the two intervals must not overlap.
    hours = OpeningHours.parse("Sun 01:00-02:30,03:00-05:00", NY)
    total = hours.opening_seconds_between(at("2026-03-08 00:00"), at("2026-03-09 00:00"))
    assert total == (at("2026-03-08 05:00") - at("2026-03-08 01:00")).total_seconds()


# --- properties ----------------------------------------------------------------------------


@given(schedule=schedules, zone=zones, created=moments, hours=hour_counts)
@settings(max_examples=300, deadline=None)
def test_the_deadline_is_that_much_opening_time_later(
    schedule: str, zone: str, created: datetime, hours: float
) -> None:
    opening = OpeningHours.parse(schedule, zone)
    due = opening.deadline(created, hours)
    assert due > created
    counted = opening.opening_seconds_between(created, due)
    assert counted == pytest.approx(timedelta(hours=hours).total_seconds(), abs=1e-6)
    # and not a moment of opening time sooner: the deadline falls in opening time
    assert opening.opening_seconds_between(due - timedelta(seconds=1), due) > 0


@given(schedule=schedules, zone=zones, now=moments, hours=hour_counts, back=st.floats(0, 1))
@settings(max_examples=300, deadline=None)
def test_the_cutoff_is_the_last_creation_time_past_its_deadline(
    schedule: str, zone: str, now: datetime, hours: float, back: float
) -> None:
    opening = OpeningHours.parse(schedule, zone)
    cutoff = opening.overdue_cutoff(now, hours)
    assert opening.deadline(cutoff, hours) <= now
    assert opening.deadline(cutoff + timedelta(microseconds=1), hours) > now
    # any creation time: overdue exactly when it is at or before the cutoff
    created = now - timedelta(hours=back * hours * 5)
    assert (opening.deadline(created, hours) <= now) == (created <= cutoff)


@given(zone=zones, start=moments, seconds=st.floats(0, 90 * 86400), hours=hour_counts)
@settings(max_examples=200, deadline=None)
def test_always_open_is_wall_clock_time(
    zone: str, start: datetime, seconds: float, hours: float
) -> None:
    always = OpeningHours.parse(ALWAYS, zone)
    end = start + timedelta(seconds=seconds)
    assert always.opening_seconds_between(start, end) == (end - start).total_seconds()
    assert always.deadline(start, hours) == start + timedelta(hours=hours)
    assert always.overdue_cutoff(start, hours) == start - timedelta(hours=hours)
    assert always.always_open


@given(schedule=schedules, zone=zones, a=moments, b=moments, c=moments)
@settings(max_examples=200, deadline=None)
def test_opening_time_adds_up(
    schedule: str, zone: str, a: datetime, b: datetime, c: datetime
) -> None:
    first, middle, last = sorted((a, b, c))
    opening = OpeningHours.parse(schedule, zone)
    whole = opening.opening_seconds_between(first, last)
    parts = opening.opening_seconds_between(first, middle) + opening.opening_seconds_between(
        middle, last
    )
    assert whole == pytest.approx(parts, abs=1e-6)
    assert 0 <= whole <= (last - first).total_seconds()
