"""Peers that misbehave, for the fault tests: each a TCP server on a loopback port, in a
thread with its own event loop (so a busy test loop never slows it, and a `leads serve`
subprocess can reach it too). What a peer does with a connection is its ``behaviour``:

- ``silent``: accepts the connection and never says a word (an SMTP server that hangs);
- ``smtp_drop_after_data``: talks SMTP until the message has been sent, then hangs up
  without answering it;
- ``http_slow``: reads a request and answers ``200`` only after ``delay`` seconds;
- ``http_reset``: reads a request and resets the connection (TCP RST);
- ``http_500_429``: an email API having a bad day, as Postmark documents its answers:
  ``500``, then ``429`` with ``Retry-After: 1``, in turn, on a kept-alive connection;
- ``http_ok``: answers every request ``204`` and records it (a healthy webhook receiver).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).parents[2]


@dataclass
class Arrival:
    at: float  # time.monotonic() when the request had been read
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


@dataclass
class Peer:
    behaviour: str
    delay: float = 60.0
    port: int = field(default_factory=free_port)
    connections: list[float] = field(default_factory=list)  # monotonic time of each accept
    arrivals: list[Arrival] = field(default_factory=list)
    answered: int = 0  # requests answered with an error (http_500_429)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set in the peer's loop

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self.lock:
            self.connections.append(time.monotonic())
        try:
            await getattr(self, f"_{self.behaviour}")(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.stopping.wait()

    async def _smtp_drop_after_data(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"220 peer.example ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                return  # the whole message sent, and the line hangs up: no 250, no 4xx
            writer.write(b"221 bye\r\n" if verb == b"QUIT" else b"250 OK\r\n")
            await writer.drain()

    async def _read_request(self, reader: asyncio.StreamReader) -> Arrival:
        head = await reader.readuntil(b"\r\n\r\n")
        arrival = Arrival(time.monotonic(), head, b"")
        length = int(arrival.header("content-length") or 0)
        arrival.body = await reader.readexactly(length)
        return arrival

    async def _http_slow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._read_request(reader)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), self.delay)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async def _http_reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def _http_500_429(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await self._read_request(reader)
            with self.lock:
                self.answered += 1
                throttled = self.answered % 2 == 0
            status, extra, message = (
                ("429 Too Many Requests", "Retry-After: 1\r\n", "Rate limit exceeded")
                if throttled
                else ("500 Internal Server Error", "", "Internal Server Error")
            )
            body = json.dumps({"ErrorCode": 0, "Message": message}).encode()
            head = f"HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()

    async def _http_ok(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            arrival = await self._read_request(reader)
            with self.lock:
                self.arrivals.append(arrival)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()


@contextlib.contextmanager
def running_peer(behaviour: str, *, delay: float = 60.0, port: int | None = None) -> Iterator[Peer]:
    """The peer, listening until the block ends; hanging connections are then cut."""
    peer = Peer(behaviour, delay=delay, port=port or free_port())
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def main() -> None:
        server = await asyncio.start_server(peer.serve, "127.0.0.1", peer.port)
        started.set()
        await peer.stopping.wait()  # and so do the connections left hanging
        server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(10), f"the {behaviour} peer did not start"
        yield peer
    finally:
        loop.call_soon_threadsafe(peer.stopping.set)
        thread.join(10)
        loop.close()


@dataclass
class PeerProcess:
    """A peer in a process of its own (``python -m tests.faults.peers``), so that its work
    takes nothing from the test's event loop or its timing; ``connections`` is counted when
    it stops."""

    behaviour: str
    port: int
    connections: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextlib.contextmanager
def peer_process(behaviour: str, *, delay: float = 60.0) -> Iterator[PeerProcess]:
    peer = PeerProcess(behaviour, free_port())
    command = [sys.executable, "-m", "tests.faults.peers", behaviour, str(peer.port), str(delay)]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "ready", f"the {behaviour} peer did not start"
        yield peer
    finally:
        process.stdin.close()  # the peer stops at the end of its input and says how it went
        peer.connections = int(process.stdout.readline().strip() or 0)
        process.wait(timeout=15)
        process.stdout.close()


def main(behaviour: str, port: str, delay: str) -> None:
    with running_peer(behaviour, delay=float(delay), port=int(port)) as peer:
        print("ready", flush=True)
        sys.stdin.read()
        with peer.lock:
            count = len(peer.connections)
    print(count, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
