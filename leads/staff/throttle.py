"""Failed sign-ins, counted per account and per client address.

    throttle = LoginThrottle(settings.rate_limit_storage, clock=clock)
    wait = await throttle.refusal(email=typed, address=ip)  # None: check the password
    ...
    await throttle.failed(email=typed, address=ip)          # only when it did not match

Five failures per account and twenty per address in any fifteen minutes (moving windows);
beyond that every attempt is refused with 429 and ``Retry-After``, before the password is
looked at, so a right password does not get through a locked account either, and an unknown
account is locked exactly like a known one. Only failures count: staff who type their
password right are never held up. The account key is the SHA-256 of the lowercased email,
so the storage (Redis, shared by every instance, with ``LEADS_RATE_LIMIT_STORAGE``) holds
no addresses. The counting is :class:`leads.abuse.ratelimit.SubmissionLimiter`'s, with its
clock and its fail-open choice: if Redis is down, sign-ins are not throttled (and a warning
is logged), rather than nobody being able to sign in.
"""

from __future__ import annotations

import hashlib

from leads.abuse.clock import SYSTEM_CLOCK, Clock
from leads.abuse.ratelimit import SubmissionLimiter, submission_keys

ACCOUNT_LIMIT = "5/15minutes"  # failed sign-ins per account
ADDRESS_LIMIT = "20/15minutes"  # failed sign-ins per client address (IPv6: per /64)


def account_key(email: str) -> str:
    return "login-account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def address_keys(address: str | None) -> list[str]:
    return [f"login-{key}" for key in submission_keys(client_ip=address, email=None, phone=None)]


class LoginThrottle:
    def __init__(self, storage: str = "memory://", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._accounts = SubmissionLimiter(ACCOUNT_LIMIT, storage, clock=clock)
        self._addresses = SubmissionLimiter(ADDRESS_LIMIT, storage, clock=clock)

    async def refusal(self, *, email: str, address: str | None) -> int | None:
        """Seconds to wait, if this account or address has failed too often; else None."""
        waits = [
            await self._accounts.test([account_key(email)]),
            await self._addresses.test(address_keys(address)),
        ]
        found = [wait for wait in waits if wait is not None]
        return max(found) if found else None

    async def failed(self, *, email: str, address: str | None) -> None:
        await self._accounts.hit([account_key(email)])
        await self._addresses.hit(address_keys(address))

    async def aclose(self) -> None:
        await self._accounts.aclose()
        await self._addresses.aclose()
