"""An open-loop load generator: request i is due at ``start + i / rate`` whether or not
earlier requests have been answered, and its latency counts from that due time, so a slow
server cannot slow the generator down and hide its own queueing (coordinated omission).

Plain asyncio streams with HTTP/1.1 keep-alive: a request takes an idle connection or, when
all are busy, opens a new one (the connect time then counts in its latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

PHONE_NUMBERS = 8_000_000  # +1 212 200 0000 ... +1 212 999 9999
REQUEST_TIMEOUT = 10.0


def submission(i: int, tag: str) -> bytes:
    """The JSON body of visitor i: the same shape as bench/unique.lua sends."""
    if not 0 <= i < PHONE_NUMBERS:
        raise ValueError(f"visitor index {i} is outside the phone number range")
    phone = f"+1 212 {200 + i // 10000:03d} {i % 10000:04d}"
    return json.dumps(
        {
            "name": f"Bench Visitor {i}",
            "email": f"{tag}{i}@example.com",
            "phone": phone,
            "consent": True,
            "message": "Is dry needling right for my lower back?",
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class Sample:
    due: float  # time.monotonic() when the request was scheduled
    sent: float  # when its bytes were written
    done: float  # when the whole answer was read (or the error happened)
    status: int  # 0 for a connection error or timeout
    body: bytes = b""


@dataclass
class OpenLoopRun:
    rate: float
    duration: float
    samples: list[Sample] = field(default_factory=list)
    connections_opened: int = 0

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 300]

    @property
    def errors(self) -> int:
        return len(self.samples) - len(self.ok)


class _Pool:
    def __init__(self, host: str, port: int, max_idle: float | None = None):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.since: list[float] = []  # when each idle connection was given back
        self.max_idle = max_idle
        self.opened = 0
        self.all: list[asyncio.StreamWriter] = []

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            conn, since = self.idle.pop(), self.since.pop()
            if self.max_idle is None or time.monotonic() - since < self.max_idle:
                return conn
            conn[1].close()  # the server may be closing it (uvicorn's keep-alive is 5 s)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        self.all.append(writer)
        return reader, writer

    def give_back(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(conn)
        self.since.append(time.monotonic())

    async def close(self) -> None:
        for writer in self.all:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    )
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"


async def _one(pool: _Pool, request: bytes, due: float) -> Sample:
    sent = time.monotonic()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            conn = await pool.take()
            sent = time.monotonic()
            conn[1].write(request)
            status, body, closing = await _read_answer(conn[0])
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        return Sample(due, sent, time.monotonic(), 0)
    done = time.monotonic()
    if not closing:
        pool.give_back(conn)
    return Sample(due, sent, done, status, body)


async def open_loop(
    host: str,
    port: int,
    *,
    rate: float,
    duration: float,
    first: int,
    tag: str,
    warm: int = 8,
    body: Callable[[int, str], bytes] = submission,
    headers: Callable[[int], bytes] | None = None,
    max_idle: float | None = None,
) -> OpenLoopRun:
    """Send ``rate * duration`` unique submissions (visitors ``first``, ``first + 1``, ...).

    ``body(i, tag)`` makes visitor i's JSON; ``headers(i)``, extra header lines for it
    (each ending in CRLF), e.g. its own X-Forwarded-For (bench/flood.py). ``max_idle``:
    never reuse a connection idle that long (as a browser would not), so the server's
    keep-alive timeout closing it cannot fail a request."""
    pool = _Pool(host, port, max_idle)
    for _ in range(warm):  # open a few connections up front, as a browser fleet would have
        pool.give_back(await pool.take())
    count = int(rate * duration)
    requests = []
    for i in range(count):
        payload = body(first + i, tag)
        extra = headers(first + i) if headers else b""
        requests.append(
            b"POST /api/leads HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
            b"%sContent-Length: %d\r\n\r\n%s" % (host.encode(), port, extra, len(payload), payload)
        )
    tasks: list[asyncio.Task[Sample]] = []
    start = time.monotonic() + 0.05
    for i, request in enumerate(requests):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(pool, request, due)))
    samples = list(await asyncio.gather(*tasks))
    opened = pool.opened
    await pool.close()
    return OpenLoopRun(rate, duration, samples, opened)
