"""Submission rate limits (``LEADS_RATE_LIMIT``), per client IP and per email and phone.

    limiter = SubmissionLimiter(settings.rate_limit, settings.rate_limit_storage, clock=clock)
    keys = submission_keys(client_ip=ip, email=submission.email, phone=submission.phone)
    retry_after = await limiter.hit(keys)   # None: go on; N: answer 429, Retry-After: N
    ...
    await limiter.aclose()                  # in the lifespan's shutdown

Every key must stay within every limit (``5/minute;30/day`` = both). ``hit`` first *tests*
all (key, limit) pairs and only then consumes one unit of each, so a refused request uses
up nothing: a visitor over the limit on their IP does not also burn through the budget of
the email address they typed. Between the test and the hits another request may take the
last unit of a key; the hit then fails and the request is refused, having consumed units
of the keys hit before it. That over-count (at most one unit per key per such race) is
accepted rather than paying for a lock around every submission.

Strategy: moving window (``MovingWindowRateLimiter``). A fixed window lets a client send
twice the limit across a window boundary (5 at 12:00:59 and 5 at 12:01:00); the moving
window never allows more than N in any period, and tells exactly when the oldest hit
expires, which becomes ``Retry-After`` (the longest wait among the exhausted limits, since
sooner the request would be refused again). It stores one timestamp per hit, which is
cheap at submission rates (30/day = 30 entries per key).

Storage: ``memory://`` (default; per process; our own ``MemoryWindows``, see its module for
why) or ``redis://`` / ``rediss://`` (shared by every instance; translated to ``limits``'
``async+redis://``, client: ``coredis``). The clock is the memory storage's time; ``limits``'
Redis storage reads ``time.time()`` itself, so there ``Retry-After`` is measured by the
system clock. If the storage fails or does not answer within ``storage_timeout`` seconds
the request is *allowed* (fail-open) and a warning is logged at most once a minute (by the
clock): losing a real
patient's enquiry because Redis is down costs more than letting a burst of spam in, and
spam is still flagged by the other checks.

The storage is created on first use, inside the running event loop (the Redis client
belongs to the loop it was made in), so the limiter can be built anywhere.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import math
from collections.abc import Sequence

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from leads.abuse.clock import SYSTEM_CLOCK, Clock
from leads.abuse.windows import MemoryWindows

log = logging.getLogger(__name__)

NAMESPACE = "leads-submit"
WARNING_INTERVAL_SECONDS = 60.0
_SCHEMES = {"memory": "async+memory", "redis": "async+redis", "rediss": "async+rediss"}


def submission_keys(*, client_ip: str | None, email: str | None, phone: str | None) -> list[str]:
    """The keys one submission counts against, normalised so that trivial variants of the
    same contact share a budget: email lower-cased without a ``+tag``; an IPv6 client by
    its /64 (one household or server gets a whole /64, and picks any address in it)."""
    keys: list[str] = []
    if client_ip:
        keys.append(f"ip:{_ip_key(client_ip)}")
    if email:
        local, _, domain = email.lower().rpartition("@")
        keys.append(f"email:{local.partition('+')[0] or local}@{domain}")
    if phone:
        keys.append(f"phone:{phone}")
    return keys


@functools.lru_cache(maxsize=4096)  # parsing the address was most of what the keys cost
def _ip_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def storage_uri(uri: str) -> str:
    """The ``limits`` async storage URI for an operator's ``memory://`` or ``redis://``."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(f"{uri!r}: use memory:// or redis://host:port (rediss:// for TLS)")
    return f"{_SCHEMES[scheme.lower()]}://{rest}"


# A timeout cancels a Redis command halfway and coredis closes that connection; a command
# of another request can still write to it and get the event loop's RuntimeError ("the
# handler is closed"). That is the storage failing too: allow, as for the others.
STORAGE_FAILURES = (StorageError, OSError, TimeoutError, RuntimeError)


class SubmissionLimiter:
    """Counts submissions against ``LEADS_RATE_LIMIT``; see the module docstring."""

    def __init__(
        self,
        rate_limit: str,
        storage: str = "memory://",
        *,
        clock: Clock = SYSTEM_CLOCK,
        storage_timeout: float = 1.0,
    ) -> None:
        self.limits: tuple[RateLimitItem, ...] = (
            () if rate_limit.strip().lower() == "off" else tuple(parse_many(rate_limit))
        )
        self._uri = storage_uri(storage)
        self._clock = clock
        memory = self._uri.startswith("async+memory://")
        self._storage_clock = clock if memory else SYSTEM_CLOCK  # the windows' own time
        self._timeout = storage_timeout
        self._storage: Storage | None = None
        self._limiter: MovingWindowRateLimiter | None = None
        self._last_warning = -math.inf

    async def hit(self, keys: Sequence[str]) -> int | None:
        """Consume one unit of every limit for each key. ``None`` if allowed, else the
        seconds (an int, at least 1) to wait before a retry can succeed."""
        if not self.limits or not keys:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                return await self._refusal(self._get_limiter(), keys, consume=True)
        except STORAGE_FAILURES as exc:
            self._warn(exc)
            return None

    async def test(self, keys: Sequence[str]) -> int | None:
        """Like :meth:`hit`, without consuming: a cheap early refusal, before any parsing."""
        if not self.limits or not keys:
            return None
        try:
            async with asyncio.timeout(self._timeout):
                return await self._refusal(self._get_limiter(), keys, consume=False)
        except STORAGE_FAILURES as exc:
            self._warn(exc)
            return None

    async def aclose(self) -> None:
        """Forget the storage (and its connections); a later ``hit`` starts afresh."""
        storage, self._storage, self._limiter = self._storage, None, None
        if storage is None:
            return
        # limits has no close(); its Redis storage keeps a coredis client with a pool.
        client = getattr(getattr(storage, "bridge", None), "storage", None)
        disconnect = getattr(getattr(client, "connection_pool", None), "disconnect", None)
        if disconnect is not None:
            result = disconnect()
            if asyncio.iscoroutine(result):
                await result
            await asyncio.sleep(0)  # let the transports finish closing

    async def _refusal(
        self, limiter: MovingWindowRateLimiter, keys: Sequence[str], *, consume: bool
    ) -> int | None:
        pairs = [(item, key) for key in dict.fromkeys(keys) for item in self.limits]
        refused = [p for p in pairs if not await limiter.test(p[0], NAMESPACE, p[1])]
        if not refused and not consume:
            return None
        if not refused:
            for item, key in pairs:
                if not await limiter.hit(item, NAMESPACE, key):
                    refused = [(item, key)]  # lost a race for the last unit
                    break
            else:
                return None
        now = self._storage_clock.now()
        waits = [
            (await limiter.get_window_stats(item, NAMESPACE, key)).reset_time - now
            for item, key in refused
        ]
        return max(1, math.ceil(max(waits)))

    def _get_storage(self) -> Storage:
        if self._storage is None:
            if self._uri.startswith("async+memory://"):
                storage: Storage = MemoryWindows(self._clock)  # see its module for why
            else:
                found = storage_from_string(self._uri, wrap_exceptions=True)
                assert isinstance(found, Storage)
                storage = found
            self._storage = storage
        return self._storage

    def _get_limiter(self) -> MovingWindowRateLimiter:
        if self._limiter is None:
            self._limiter = MovingWindowRateLimiter(self._get_storage())
        return self._limiter

    def _warn(self, exc: BaseException) -> None:
        now = self._clock.now()
        if now - self._last_warning >= WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            log.warning(
                "rate-limit storage unavailable (%s: %s); allowing submissions",
                type(exc).__name__,
                exc,
            )
