"""What one connection may cost: uvicorn's httptools protocol with deadlines and limits.

uvicorn bounds only the wait *between* requests (``timeout_keep_alive``). This subclass adds,
per connection:

- a deadline for the request head (``LEADS_HEADER_TIMEOUT_SECONDS``), counted from the moment
  the connection opens or its previous answer is finished, then one for the body
  (``LEADS_BODY_TIMEOUT_SECONDS``). A connection that had sent part of a request gets
  ``408``; one that had sent nothing is closed quietly;
- a limit on the request head's size (``LEADS_MAX_HEADER_BYTES``, counted as bytes arrive,
  since httptools buffers a header until it is complete) and header count
  (``LEADS_MAX_HEADERS``): ``431`` and close;
- at most ``MAX_QUEUED_REQUESTS`` pipelined requests waiting behind the one being answered;
  a client that sends more gets the queued ones answered, and then the connection closed.
  A client that stops reading its answers (the write buffer stays full for longer than the
  body timeout) is cut off;
- a cap on open connections per process (``LEADS_MAX_CONNECTIONS``). At the cap, the
  connection that has waited longest for a request head is closed to make room; only when
  none is waiting does the newcomer get ``503`` with ``Retry-After``.

Every other behaviour is uvicorn's own: keep-alive, ``400`` on a malformed request,
shutdown. Closed connections are logged one line per reason at most once a minute, with a
count and no address or content.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from leads.settings import Settings

log = logging.getLogger("leads.web")

MAX_QUEUED_REQUESTS = 16  # pipelined requests waiting behind the one being answered
RETRY_AFTER_SECONDS = 5  # told to clients turned away at the connection cap
LOG_INTERVAL_SECONDS = 60.0  # one line per reason at most this often

REASONS = {
    "idle": "no request within the header timeout",
    "slow_head": "request head not complete within the header timeout (408)",
    "slow_body": "request body not complete within the body timeout (408)",
    "head_too_large": "request head larger than the limit (431)",
    "too_many_headers": "more request headers than the limit (431)",
    "pipelining": f"more than {MAX_QUEUED_REQUESTS} pipelined requests queued; the queued "
    "ones are answered, then the connection closed",
    "not_reading": "client stopped reading its answers",
    "evicted": "waiting for a request head when the connection cap was reached",
    "over_capacity": "connection cap reached with no idle connection to close (503)",
}


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_header_bytes: int
    max_headers: int
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_connections=settings.max_connections,
        )


@dataclass
class ClosureLog:
    """Counts closed connections by reason; logs a reason at most once an interval."""

    interval: float = LOG_INTERVAL_SECONDS
    _last: dict[str, float] = field(default_factory=dict)
    _unreported: dict[str, int] = field(default_factory=dict)

    def closed(self, reason: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        count = self._unreported.get(reason, 0) + 1
        last = self._last.get(reason)
        if last is not None and now - last < self.interval:
            self._unreported[reason] = count
            return
        self._last[reason] = now
        self._unreported[reason] = 0
        log.warning(
            "closed %d connection(s): %s (at most one such line per %.0f s)",
            count,
            REASONS[reason],
            self.interval,
        )


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; carries why."""

    def __init__(self, reason: str, status: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def protocol_factory(settings: Settings) -> functools.partial[BoundedHttpProtocol]:
    """What ``uvicorn.run(http=...)`` takes. Picklable, for ``workers > 1``: each worker
    process gets its own copy (and its own closure counts)."""
    return functools.partial(
        BoundedHttpProtocol, limits=ConnectionLimits.from_settings(settings), closures=ClosureLog()
    )


class BoundedHttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits,
        closures: ClosureLog,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.closures = closures
        self.in_head = False  # the parser is between a message's start and its headers' end
        self.in_body = False  # ... between the headers' end and the message's end
        self.waiting_since: float | None = None  # waiting for a request head, since when
        self.answered = 0
        self.head_bytes = 0
        self.head_tail = b""  # the last bytes of the head so far: its end may straddle reads
        self.over_capacity = False
        self.discarding = False  # too many pipelined requests: the rest is not parsed
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_kind: str | None = None
        self.write_stall: asyncio.TimerHandle | None = None

    # The connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._evict_idle():
            self.over_capacity = True  # answered 503 once it says something
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self.write_stall is not None:
            self.write_stall.cancel()
            self.write_stall = None
        self.waiting_since = None
        super().connection_lost(exc)

    def _evict_idle(self) -> bool:
        """Close the connection that has waited longest for a request head, if any."""
        waiting = [
            other
            for other in self.connections
            if isinstance(other, BoundedHttpProtocol)
            and other is not self
            and other.waiting_since is not None
            and not other.transport.is_closing()
        ]
        oldest = min(waiting, key=lambda other: other.waiting_since or 0.0, default=None)
        if oldest is None:
            return False
        oldest._give_up("evicted", 408 if oldest.in_head else None)
        return True

    # Reading
    def data_received(self, data: bytes) -> None:
        if self.over_capacity:
            self._give_up("over_capacity", 503)
            return
        if self.discarding:
            return
        self._unset_keepalive_if_required()
        if not self.in_body and self._head_grew_too_large(data):
            self._give_up("head_too_large", 431)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused) and refused.reason == "pipelining":
                self._answer_queue_then_close()
            elif isinstance(refused, _Refused):
                self._give_up(refused.reason, refused.status)
            else:
                self._bad_request()
            return
        except httptools.HttpParserError:
            self._bad_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        self._rearm()

    def _answer_queue_then_close(self) -> None:
        """Too many pipelined requests: answer those already queued, read no further (what
        arrives is dropped unparsed) and close after the last answer."""
        self.closures.closed("pipelining")
        self.discarding = True
        self.cycle.keep_alive = False  # the newest queued request, answered last

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."  # uvicorn's own answer and log line
        self.logger.warning(msg)
        self.send_400_response(msg)

    def _head_grew_too_large(self, data: bytes) -> bool:
        """Count the bytes of the request head as they arrive, before httptools buffers them.
        A head that starts after another request in the same read is counted from the next
        read on (at most one read's worth of slack); on_headers_complete checks it exactly."""
        window = self.head_tail + data
        end = window.find(b"\r\n\r\n")
        if end < 0:
            self.head_bytes += len(data)
            self.head_tail = window[-3:]
        else:
            self.head_bytes += end + 4 - len(self.head_tail)
        return self.head_bytes > self.limits.max_header_bytes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.limits.max_headers:
            raise _Refused("too_many_headers", 431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        head = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + 32
        if head > self.limits.max_header_bytes:
            raise _Refused("head_too_large", 431)
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering and len(self.pipeline) >= MAX_QUEUED_REQUESTS:
            raise _Refused("pipelining", None)
        self.in_head = False
        self.in_body = True
        self.head_bytes = 0
        self.head_tail = b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.in_body = False
        super().on_message_complete()

    # Answering
    def on_response_complete(self) -> None:
        self.answered += 1
        super().on_response_complete()
        if self.transport.is_closing():
            self._limit_lingering()  # uvicorn closed it after an answer with Connection: close
        else:
            self._rearm()

    def timeout_keep_alive_handler(self) -> None:
        super().timeout_keep_alive_handler()
        self._limit_lingering()

    def _limit_lingering(self) -> None:
        """close() waits for the write buffer to drain, which a client that does not read
        never lets happen; give it the body timeout, then drop the connection."""
        if self.write_stall is None and self.transport.get_write_buffer_size():
            self.write_stall = self.loop.call_later(
                self.limits.body_timeout, self._give_up, "not_reading", None
            )

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_stall is None:
            self.write_stall = self.loop.call_later(
                self.limits.body_timeout, self._give_up, "not_reading", None
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.write_stall is not None:
            self.write_stall.cancel()
            self.write_stall = None

    # Deadlines
    def _answering(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _rearm(self) -> None:
        """Keep the one deadline the connection's state calls for: the body's while the
        request being answered is still arriving, the head's while nothing is being
        answered, none while the client waits for us. A deadline of the same kind keeps
        running, so it counts from when that wait began."""
        if self.in_body:
            kind = None if self.pipeline else "body"
        else:
            kind = None if self._answering() else "head"
        if kind != "head":
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = self.loop.time()
        if kind == self.deadline_kind:
            return
        self._cancel_deadline()
        if kind is not None:
            timeout = self.limits.header_timeout if kind == "head" else self.limits.body_timeout
            self.deadline = self.loop.call_later(timeout, self._deadline_passed)
            self.deadline_kind = kind

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = None
        self.deadline_kind = None

    def _deadline_passed(self) -> None:
        self.deadline = None
        self.deadline_kind = None
        if self.in_body:
            self._give_up("slow_body", 408)
        elif self.in_head:
            self._give_up("slow_head", 408)
        elif self.answered:
            self._give_up(None, None)  # an ordinary keep-alive connection gone quiet
        else:
            self._give_up("idle", None)

    def _may_answer(self) -> bool:
        """Whether a status line now would answer the request being read, not interleave
        with or jump ahead of another request's answer."""
        if self.pipeline:
            return False
        if self.cycle is None or self.cycle.response_complete:
            return True
        return self.in_body and not self.cycle.response_started

    def _give_up(self, reason: str | None, status: int | None) -> None:
        if self.transport.is_closing():
            if reason == "not_reading":
                self.closures.closed(reason)
                self.transport.abort()
            return
        self._cancel_deadline()
        self.waiting_since = None
        if reason is not None:
            self.closures.closed(reason)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's answer, if any, goes nowhere
            self.cycle.message_event.set()
        if status is not None and self._may_answer():
            self.transport.write(_refusal(status))
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a client that does not read would keep close() waiting
        else:
            self.transport.close()


@functools.cache
def _refusal(status: int) -> bytes:
    body = {
        408: b"The request did not arrive in time.\n",
        431: b"The request headers are too large.\n",
        503: b"The server is busy; try again shortly.\n",
    }[status]
    retry = f"retry-after: {RETRY_AFTER_SECONDS}\r\n".encode() if status == 503 else b""
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            retry,
            b"connection: close\r\n\r\n",
            body,
        ]
    )
