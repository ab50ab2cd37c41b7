"""In-process storage for ``limits``' moving windows (``LEADS_RATE_LIMIT_STORAGE=memory://``).

Why not ``limits``' own async memory storage: after every hit it sweeps *every* key it
holds, with one thread-pool round trip per key. Our keys are per visitor (address, email,
phone) and live a day under ``30/day``, so the sweep grows with the day's visitors and
runs whenever the loop is otherwise idle; under a flood from many addresses it was most of
the server's work. What each costs is measured by ``bench/ratelimit.py``
(docs/performance.md).

Here each key keeps at most ``limit`` timestamps in a plain list (the oldest first),
expired ones are dropped whenever the key is used, and a sweep of the whole table, in the
event loop and without threads, runs at most once per ``SWEEP_SECONDS`` to forget visitors
who never came back. Same answers as ``limits``' storages: a hit is allowed while fewer
than ``limit`` entries are at most ``expiry`` seconds old. Time is the given clock's.
"""

from __future__ import annotations

import bisect

from limits.aio.storage import MovingWindowSupport, Storage

from leads.abuse.clock import Clock

SWEEP_SECONDS = 60.0


class MemoryWindows(Storage, MovingWindowSupport):
    STORAGE_SCHEME = None  # built directly by SubmissionLimiter; never by a URI

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock.now
        self._windows: dict[str, tuple[float, list[float]]] = {}  # key -> (expiry, times)
        self._counters: dict[str, tuple[float, int]] = {}  # key -> (expires at, count)
        self._next_sweep = clock.now() + SWEEP_SECONDS

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()

    # -- moving windows (what MovingWindowRateLimiter uses) --------------------------------

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = self._clock()
        self._maybe_sweep(now)
        times = self._current(key, expiry, now)
        if amount > limit or len(times) + amount > limit:
            return False
        times.extend([now] * amount)
        self._windows[key] = (expiry, times)
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self._clock()
        times = self._current(key, expiry, now)
        return (times[0], len(times)) if times else (now, 0)

    def _current(self, key: str, expiry: float, now: float) -> list[float]:
        """The key's timestamps within the window (older ones dropped)."""
        found = self._windows.get(key)
        if found is None:
            return []
        times = found[1]
        del times[: bisect.bisect_left(times, now - expiry)]
        if not times:
            del self._windows[key]
        return times

    def _maybe_sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for key, (expiry, _) in list(self._windows.items()):
            self._current(key, expiry, now)
        for key, (expires_at, _) in list(self._counters.items()):
            if expires_at <= now:
                del self._counters[key]

    # -- plain counters (the Storage interface; unused by the moving window) --------------

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        expires_at, count = self._counters.get(key, (now + expiry, 0))
        if expires_at <= now:
            expires_at, count = now + expiry, 0
        self._counters[key] = (expires_at, count + amount)
        return count + amount

    async def get(self, key: str) -> int:
        expires_at, count = self._counters.get(key, (0.0, 0))
        return count if expires_at > self._clock() else 0

    async def get_expiry(self, key: str) -> float:
        return self._counters.get(key, (self._clock(), 0))[0]

    async def check(self) -> bool:
        return True

    async def reset(self) -> int | None:
        cleared = len(self._windows) + len(self._counters)
        self._windows.clear()
        self._counters.clear()
        return cleared

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        self._counters.pop(key, None)
