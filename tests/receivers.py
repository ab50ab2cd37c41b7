"""A real HTTP receiver for webhooks: a threaded server on 127.0.0.1 that records every
request and answers each path from a script (then 200), optionally holding answers until
several requests to a path overlap."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    at: float  # time.time() on arrival

    def payload(self, secret: str) -> dict[str, Any]:
        """The body, its signature verified with ``secret`` (raises if it does not hold)."""
        verified: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return verified


@dataclass
class Receiver:
    """Records every request; answers each path from its script, then 200."""

    port: int = 0
    script: dict[str, list[int]] = field(default_factory=dict)
    # Hold answers to a path until this many requests to it have arrived (they overlap).
    together: dict[str, int] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Condition = field(
        default_factory=lambda: threading.Condition(threading.RLock())
    )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def to(self, path: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.path == path]

    def everything(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    def answer(self, delivery: Delivery) -> int:
        with self.lock:
            self.deliveries.append(delivery)
            self.lock.notify_all()
            if delivery.path in self.together:
                self.lock.wait_for(
                    lambda: len(self.to(delivery.path)) >= self.together[delivery.path], 5
                )
            script = self.script.get(delivery.path, [])
            return script.pop(0) if script else 200


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = receiver.answer(Delivery(self.command, self.path, headers, body, time.time()))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_POST  # a followed redirect is recorded too

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A :class:`Receiver` listening on a free port until the block ends."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
