"""Submission rate limits, in memory and on a real Redis server (Debian's redis-server)."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from leads.abuse.ratelimit import SubmissionLimiter, storage_uri, submission_keys
from leads.abuse.windows import MemoryWindows
from leads.settings import Settings
from tests.clock import FakeClock
from tests.servers import free_port, redis_server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server(free_port()) as url:
        yield url


@pytest.fixture
async def limiters() -> AsyncIterator[list[SubmissionLimiter]]:
    """Limiters made by a test, closed after it."""
    made: list[SubmissionLimiter] = []
    yield made
    for limiter in made:
        await limiter.aclose()


def make(
    made: list[SubmissionLimiter], rate: str, storage: str = "memory://", **kw: Any
) -> SubmissionLimiter:
    # A generous storage timeout: a busy CI machine can take over a second to connect.
    limiter = SubmissionLimiter(rate, storage, **{"storage_timeout": 5.0, **kw})
    made.append(limiter)
    return limiter


async def test_allows_up_to_the_limit_then_says_how_long_to_wait(
    limiters: list[SubmissionLimiter],
) -> None:
    limiter = make(limiters, "2/minute")
    assert await limiter.hit(["ip:203.0.113.7"]) is None
    assert await limiter.hit(["ip:203.0.113.7"]) is None
    retry_after = await limiter.hit(["ip:203.0.113.7"])
    assert isinstance(retry_after, int)
    assert 59 <= retry_after <= 60
    assert await limiter.hit(["ip:198.51.100.1"]) is None  # another client is not affected


async def test_retry_after_is_when_the_oldest_hit_leaves_the_window(
    limiters: list[SubmissionLimiter],
) -> None:
    clock = FakeClock()
    limiter = make(limiters, "2/minute", clock=clock)
    assert await limiter.hit(["ip:a"]) is None
    clock.advance(20)
    assert await limiter.hit(["ip:a"]) is None
    clock.advance(10)
    assert await limiter.hit(["ip:a"]) == 30  # the first hit is 30 s from leaving
    clock.advance(30)
    assert await limiter.test(["ip:a"]) == 1  # exactly a minute old is still within it
    clock.advance(0.5)
    assert await limiter.hit(["ip:a"]) is None  # the window has moved on
    assert await limiter.hit(["ip:a"]) == 20


async def test_a_refused_request_consumes_nothing(limiters: list[SubmissionLimiter]) -> None:
    limiter = make(limiters, "1/minute")
    assert await limiter.hit(["ip:a", "email:jo@example.com"]) is None
    # Refused on its IP: the new email address must keep its whole budget.
    assert await limiter.hit(["ip:a", "email:sam@example.com"]) is not None
    assert await limiter.hit(["ip:b", "email:sam@example.com"]) is None
    # And refused on the email: the fresh IP c keeps its budget.
    assert await limiter.hit(["ip:c", "email:jo@example.com"]) is not None
    assert await limiter.hit(["ip:c"]) is None


async def test_every_limit_counts_and_retry_after_is_the_longest_wait(
    limiters: list[SubmissionLimiter],
) -> None:
    limiter = make(limiters, "5/minute;2/hour")
    assert await limiter.hit(["ip:a"]) is None
    assert await limiter.hit(["ip:a"]) is None
    retry_after = await limiter.hit(["ip:a"])
    assert retry_after is not None
    assert 3590 <= retry_after <= 3600


async def test_the_same_key_twice_counts_once(limiters: list[SubmissionLimiter]) -> None:
    limiter = make(limiters, "1/minute")
    assert await limiter.hit(["ip:a", "ip:a"]) is None


async def test_off_and_no_keys(limiters: list[SubmissionLimiter]) -> None:
    off = make(limiters, "off")
    assert off.limits == ()
    assert [await off.hit(["ip:a"]) for _ in range(10)] == [None] * 10
    on = make(limiters, "1/day")
    assert await on.hit([]) is None
    assert await on.hit(["ip:a"]) is None  # nothing was counted: the one unit is still there


def test_keys_are_normalised() -> None:
    assert submission_keys(client_ip="203.0.113.7", email=None, phone=None) == ["ip:203.0.113.7"]
    assert submission_keys(
        client_ip="2001:db8:1:2:aaaa::1", email="Jo.Smith+Clinic@Example.COM", phone="+12025550123"
    ) == ["ip:2001:db8:1:2::/64", "email:jo.smith@example.com", "phone:+12025550123"]
    assert submission_keys(client_ip=None, email="+x@example.com", phone=None) == [
        "email:+x@example.com"
    ]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("memory://", "async+memory://"),
        ("redis://cache.internal:6379/2", "async+redis://cache.internal:6379/2"),
        ("rediss://:pw@cache.internal:6380", "async+rediss://:pw@cache.internal:6380"),
    ],
)
def test_operator_uris_become_async_storage_uris(uri: str, expected: str) -> None:
    assert storage_uri(uri) == expected


@pytest.mark.parametrize("uri", ["memcached://x:11211", "cache.internal:6379", "async+redis://x"])
def test_other_storages_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        SubmissionLimiter("5/minute", uri)


async def test_two_instances_share_limits_through_redis(
    redis_url: str, limiters: list[SubmissionLimiter]
) -> None:
    first = make(limiters, "3/minute", redis_url)
    second = make(limiters, "3/minute", redis_url)
    key = f"ip:shared-{time.time_ns()}"
    assert await first.hit([key]) is None
    assert await second.hit([key]) is None
    assert await first.hit([key]) is None
    retry_after = await second.hit([key])
    assert retry_after is not None
    assert 1 <= retry_after <= 60
    assert await first.hit([key]) is not None


async def test_redis_refusal_consumes_nothing_either(
    redis_url: str, limiters: list[SubmissionLimiter]
) -> None:
    first = make(limiters, "1/minute", redis_url)
    second = make(limiters, "1/minute", redis_url)
    tag = time.time_ns()
    assert await first.hit([f"ip:a{tag}", f"email:jo{tag}"]) is None
    assert await second.hit([f"ip:a{tag}", f"email:sam{tag}"]) is not None
    assert await first.hit([f"ip:b{tag}", f"email:sam{tag}"]) is None


async def test_redis_down_allows_and_warns_once_a_minute(
    limiters: list[SubmissionLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    limiter = make(limiters, "1/minute", f"redis://127.0.0.1:{free_port()}", clock=clock)

    def warnings() -> int:
        return sum("rate-limit storage unavailable" in r.message for r in caplog.records)

    with caplog.at_level(logging.WARNING, logger="leads.abuse.ratelimit"):
        assert [await limiter.hit(["ip:a"]) for _ in range(3)] == [None, None, None]
        assert warnings() == 1
        clock.advance(59)
        assert await limiter.test(["ip:a"]) is None
        assert warnings() == 1
        clock.advance(1)
        assert await limiter.hit(["ip:a"]) is None
        assert warnings() == 2


async def test_redis_that_does_not_answer_times_out_and_allows(
    limiters: list[SubmissionLimiter],
) -> None:
    # A socket that accepts connections and never says a word.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        limiter = make(limiters, "1/minute", f"redis://127.0.0.1:{port}", storage_timeout=0.3)
        started = time.monotonic()
        assert await limiter.hit(["ip:a"]) is None
        assert time.monotonic() - started < 2
        await limiter.aclose()
        await asyncio.sleep(0)


async def test_redis_going_away_and_coming_back(limiters: list[SubmissionLimiter]) -> None:
    port = free_port()
    limiter = make(limiters, "1/minute", f"redis://127.0.0.1:{port}")
    with redis_server(port):
        assert await limiter.hit(["ip:a"]) is None
        assert await limiter.hit(["ip:a"]) is not None
    assert await limiter.hit(["ip:a"]) is None  # down: fail-open
    with redis_server(port):  # back, empty: counting starts again
        assert await limiter.hit(["ip:a"]) is None
        assert await limiter.hit(["ip:a"]) is not None


def test_the_storage_setting_is_checked_and_the_defaults_build_a_limiter() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    limiter = SubmissionLimiter(settings.rate_limit, settings.rate_limit_storage)
    assert [str(item) for item in limiter.limits] == ["5 per 1 minute", "30 per 1 day"]
    for good in ("redis://cache:6379/0", "rediss://:pw@cache:6380", "memory://"):
        assert Settings(_env_file=None, rate_limit_storage=good).rate_limit_storage == good  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="memory:// or redis://"):
        Settings(_env_file=None, rate_limit_storage="memcached://cache:11211")  # type: ignore[call-arg]


async def test_the_memory_window_slides_as_redis_does(
    redis_url: str, limiters: list[SubmissionLimiter]
) -> None:
    """Our in-process windows (leads/abuse/windows.py) against limits' Redis storage, the
    library's own implementation: the same hits, spread over more than one window, get
    the same answers."""
    rate = "3/2 seconds;5/4 seconds"
    memory, redis = make(limiters, rate), make(limiters, rate, redis_url)
    key = f"ip:slide-{time.time_ns()}"
    answers: dict[str, list[bool]] = {"memory": [], "redis": []}
    started = time.monotonic()
    for step in range(16):
        # On a fixed schedule, 0.35 s apart: window edges (2 s, 4 s after a hit) then fall
        # >= 0.1 s from any check, however slow each step is.
        await asyncio.sleep(max(0.0, started + step * 0.35 - time.monotonic()))
        for name, limiter in (("memory", memory), ("redis", redis)):
            wait = await limiter.hit([key]) if step % 3 else await limiter.test([key])
            answers[name].append(wait is None)
            assert wait is None or 1 <= wait <= 4
    assert answers["memory"] == answers["redis"]
    assert not all(answers["memory"]), "the limit never refused"
    assert any(answers["memory"][8:]), "the window never slid: no hit allowed after step 8"


async def test_memory_windows_count_exactly_as_a_list_of_every_hit() -> None:
    """leads/abuse/windows.py against the plain definition, on a clock of our own: a hit of
    ``amount`` is allowed while the hits at most ``expiry`` seconds old, plus it, are within
    ``limit``; the window starts at the oldest of those. Edges exactly ``expiry`` old,
    amounts above one, and the once-a-minute sweep are all crossed."""
    clock = FakeClock(1_000_000.0)
    store = MemoryWindows(clock)
    hits: dict[str, list[float]] = {}
    pick = random.Random(20261125)
    for _ in range(3000):
        clock.advance(pick.choice([0.0, 0.5, 1.0, 3.0, 9.5, 10.0, 10.5, 61.0]))
        now = clock.now()
        key, amount = f"key{pick.randrange(4)}", pick.choice([1, 1, 1, 2, 4])
        recent = [t for t in hits.get(key, []) if t >= now - 10]
        allowed = len(recent) + amount <= 3
        assert await store.acquire_entry(key, 3, 10, amount) is allowed
        if allowed:
            hits.setdefault(key, []).extend([now] * amount)
            recent += [now] * amount
        start, count = await store.get_moving_window(key, 3, 10)
        assert (start, count) == ((min(recent), len(recent)) if recent else (now, 0))
