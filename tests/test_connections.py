"""What one connection may cost `leads serve` (leads/web/connections.py): real sockets on
127.0.0.1 against a real subprocess with short deadlines, while real visitors keep
submitting and must keep getting 201."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import Service, free_port, leads_process

pytestmark = pytest.mark.slow  # real sockets against a real server, waiting on deadlines

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
SLACK = 3.0  # a deadline is met if the close comes at most this much later (a loaded CI box)
SECRET = "connections-test-secret-0123456789"
Record = Callable[[str, object], None]  # pytest's record_property


def service_env(database: Path, **extra: str) -> dict[str, str]:
    return {
        "LEADS_DATABASE_URL": f"sqlite:///{database}",
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",  # every visitor here comes from 127.0.0.1
        "LEADS_LOG_LEVEL": "warning",
        "LEADS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "LEADS_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        **extra,
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    database = tmp_path_factory.mktemp("connections") / "leads.db"
    with leads_process(service_env(database)) as running:
        yield running


def address(service: Service) -> tuple[str, int]:
    return ("127.0.0.1", int(service.url.rsplit(":", 1)[1]))


def connect(service: Service) -> socket.socket:
    return socket.create_connection(address(service), timeout=10)


def read_until_closed(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start = time.monotonic()
    received = b""
    while time.monotonic() - start < within:
        sock.settimeout(max(0.01, within - (time.monotonic() - start)))
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError(f"still open after {within} s")
    return received, time.monotonic() - start


def closed_now(sock: socket.socket) -> bool:
    """Whether the server has closed (EOF or reset) without anything left to read."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


class Visitors:
    """Real submissions, one after another on fresh connections, in a thread."""

    def __init__(self, service: Service) -> None:
        self.url = f"{service.url}/api/leads"
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 60  # bounded even if a test forgets to stop it
        while not self._stop.is_set() and time.monotonic() < deadline:
            body = {"name": "Ada Lovelace", "email": f"ada.{uuid.uuid4().hex[:10]}@example.com"}
            start = time.monotonic()
            try:
                status = httpx.post(
                    self.url, json={**body, "consent": True}, timeout=10
                ).status_code
            except httpx.TransportError:
                status = 0
            self.latencies.append(time.monotonic() - start)
            self.statuses.append(status)
            self._stop.wait(0.05)

    def __enter__(self) -> Visitors:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@contextlib.contextmanager
def visitors_during_attack(
    service: Service, record_property: Record, attack: str
) -> Iterator[Visitors]:
    with Visitors(service) as visitors:
        yield visitors
    assert visitors.statuses, "no real submission was made during the attack"
    assert set(visitors.statuses) == {201}, f"real visitors got {visitors.statuses}"
    # Shown in the run's summary ("measured"), with or without xdist.
    record_property(
        "measured",
        f"{attack}: {len(visitors.statuses)} real submissions, all 201, "
        f"p99 {visitors.p99_ms():.0f} ms",
    )


def logged(service: Service, text: str, within: float = 5) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if text in service.output():
            return True
        time.sleep(0.05)
    return False


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def head_of(answer: bytes) -> str:
    return answer.split(b"\r\n\r\n", 1)[0].decode().lower()


def test_a_connection_that_sends_nothing_is_closed_quietly(
    service: Service, record_property: Record
) -> None:
    with visitors_during_attack(service, record_property, "idle connections"):
        start = time.monotonic()
        socks = [connect(service) for _ in range(20)]
        for sock in socks:
            answer, _ = read_until_closed(sock, HEADER_TIMEOUT + SLACK)
            assert answer == b""
            sock.close()
        took = time.monotonic() - start
    assert HEADER_TIMEOUT * 0.8 <= took <= HEADER_TIMEOUT + SLACK
    assert logged(service, "no request within the header timeout")


def test_a_head_dribbled_byte_by_byte_gets_408_at_the_header_deadline(
    service: Service, record_property: Record
) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with visitors_during_attack(service, record_property, "slow headers"), connect(service) as sock:
        start = time.monotonic()
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([sock], [], [], 0.2)[0]:
                break
        answer, _ = read_until_closed(sock, SLACK)
        took = time.monotonic() - start
    assert status_of(answer) == 408
    assert "connection: close" in head_of(answer)
    assert HEADER_TIMEOUT * 0.8 <= took <= HEADER_TIMEOUT + SLACK
    assert logged(service, "request head not complete within the header timeout")


def test_a_body_that_stops_arriving_gets_408_at_the_body_deadline(
    service: Service, record_property: Record
) -> None:
    head = (
        b"POST /api/leads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    with visitors_during_attack(service, record_property, "slow bodies"):
        socks = [connect(service) for _ in range(10)]
        start = time.monotonic()
        for sock in socks:
            sock.sendall(head)
        answers = [read_until_closed(sock, BODY_TIMEOUT + SLACK)[0] for sock in socks]
        took = time.monotonic() - start
        for sock in socks:
            sock.close()
    assert [status_of(a) for a in answers] == [408] * len(socks)
    assert BODY_TIMEOUT * 0.8 <= took <= BODY_TIMEOUT + SLACK
    assert logged(service, "request body not complete within the body timeout")


def test_an_oversized_or_unterminated_head_gets_431_at_once(
    service: Service, record_property: Record
) -> None:
    big = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    with visitors_during_attack(service, record_property, "oversized heads"):
        with connect(service) as sock:
            sock.sendall(big)
            answer, took = read_until_closed(sock, SLACK)
        assert status_of(answer) == 431
        assert "connection: close" in head_of(answer)
        assert took < HEADER_TIMEOUT  # refused as it arrived, not at the deadline
        # A header that never ends: refused once the limit is passed, not buffered. What the
        # client manages to send depends on the kernel's buffers and on how busy the machine
        # is; what the server holds does not grow with it.
        before = rss_kib(service)
        with connect(service) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
            sent = 0
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while sent < 8_000_000 and not select.select([sock], [], [], 0.001)[0]:
                    sock.sendall(b"a" * 4096)
                    sent += 4096
            answer, _ = read_until_closed(sock, SLACK)
        assert status_of(answer) == 431
        assert rss_kib(service) - before < 4096, "the server buffered the endless header"
    assert logged(service, "request head larger than the limit (431)")


def test_too_many_headers_get_431(service: Service, record_property: Record) -> None:
    headers = b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
    with (
        visitors_during_attack(service, record_property, "too many headers"),
        connect(service) as sock,
    ):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        answer, _ = read_until_closed(sock, SLACK)
    assert status_of(answer) == 431
    assert logged(service, "more request headers than the limit (431)")


def test_ordinary_requests_with_many_small_headers_are_served(service: Service) -> None:
    headers = {f"X-H{i}": "1" for i in range(90)}
    assert httpx.get(f"{service.url}/healthz", headers=headers, timeout=5).status_code == 200


def test_pipelined_requests_beyond_the_queue_are_not_read(service: Service) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with connect(service) as sock:
        sock.sendall(request * 40)
        answer, _ = read_until_closed(sock, SLACK)
    # The one being answered and the 16 queued behind it; then the connection is closed.
    assert answer.count(b"HTTP/1.1 200 ") == 17
    assert logged(service, "pipelined requests queued")
    with connect(service) as sock:  # within the limit, every request is answered
        sock.sendall(request * 16 + request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        answer, _ = read_until_closed(sock, SLACK)
    assert answer.count(b"HTTP/1.1 200 ") == 17


def rss_kib(service: Service) -> int:
    """The server process's resident memory, in KiB."""
    for line in Path(f"/proc/{service.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def server_holds(service: Service, sock: socket.socket) -> bool:
    """Whether the server process still has this client's connection open (an fd on it)."""
    # The server's port from its address: once the server has reset the connection, the
    # socket no longer knows its peer (getpeername fails with ENOTCONN).
    client_port, server_port = sock.getsockname()[1], address(service)[1]
    # The table lists every socket on the machine (other tests' too): match both ends, and
    # only sockets that have an inode (not TIME_WAIT leftovers).
    inodes = set()
    for line in Path(f"/proc/{service.process.pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
        if (local, remote) == (server_port, client_port) and fields[9] != "0":
            inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    fds = Path(f"/proc/{service.process.pid}/fd")
    return any(_link(fd) in inodes for fd in fds.iterdir())


def _link(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:  # closed while we looked
        return ""


def test_a_pipelining_client_that_does_not_read_is_let_go(
    service: Service, record_property: Record
) -> None:
    request = b"GET /f/dry-needling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    attack = visitors_during_attack(service, record_property, "non-reading pipelining")
    with attack, socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect(address(service))
        sock.settimeout(0.2)
        accepted = time.monotonic() + SLACK  # until the server has accepted it, it holds nothing
        while not server_holds(service, sock):
            assert time.monotonic() < accepted, "the server never took the connection"
            time.sleep(0.01)
        start = time.monotonic()
        within = HEADER_TIMEOUT + BODY_TIMEOUT + SLACK
        while time.monotonic() - start < within and server_holds(service, sock):
            with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
                sock.send(request * 50)  # never reading a single answer
            time.sleep(0.05)
        assert not server_holds(service, sock), f"still held after {within} s"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server allowed 20 connections, with deadlines long enough to outlast a test."""
    database = tmp_path_factory.mktemp("capped") / "leads.db"
    env = service_env(
        database,
        LEADS_MAX_CONNECTIONS="20",
        LEADS_HEADER_TIMEOUT_SECONDS="8",
        LEADS_BODY_TIMEOUT_SECONDS="8",
    )
    with leads_process(env) as running:
        yield running


def test_idle_connections_at_the_cap_make_room_for_visitors(
    capped: Service, record_property: Record
) -> None:
    idle = [connect(capped) for _ in range(60)]  # three times the cap, all silent
    try:
        with visitors_during_attack(capped, record_property, "idle connections beyond the cap"):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and sum(closed_now(s) for s in idle) < 40:
                time.sleep(0.05)
        # The oldest idle ones were closed to make room, well before their deadline (8 s).
        assert sum(closed_now(s) for s in idle) >= 40
    finally:
        for sock in idle:
            sock.close()
    assert logged(capped, "waiting for a request head when the connection cap was reached")


def test_beyond_the_cap_with_none_idle_the_newcomer_gets_503(capped: Service) -> None:
    head = (
        b"POST /api/leads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    busy: list[socket.socket] = []
    try:
        for _ in range(20):  # each is sending a body: not idle, never evicted
            sock = connect(capped)
            sock.sendall(head)
            busy.append(sock)
        answer = b""
        deadline = time.monotonic() + 5
        while status_of(answer) != 503 and time.monotonic() < deadline:
            # The busy connections' heads may still be on their way: ask again until they are in.
            with connect(capped) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                answer, _ = read_until_closed(sock, SLACK)
        head_text = head_of(answer)
        assert status_of(answer) == 503
        assert "retry-after: " in head_text
        assert "connection: close" in head_text
        assert all(not closed_now(sock) for sock in busy), "a busy connection was evicted"
    finally:
        for sock in busy:
            sock.close()
    assert logged(capped, "connection cap reached with no idle connection to close (503)")


@pytest.mark.postgres
def test_workers_share_the_limits(tmp_path: Path, postgres_url: str) -> None:
    """With several workers (uvicorn spawns processes), each enforces the same deadlines.
    (Several workers need PostgreSQL.)"""
    env = {**service_env(tmp_path / "leads.db"), "LEADS_DATABASE_URL": postgres_url}
    port = free_port()
    with leads_process(env, "serve", "--port", str(port), "--workers", "2", port=port) as running:
        with connect(running) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            answer, took = read_until_closed(sock, HEADER_TIMEOUT + SLACK)
        assert status_of(answer) == 408
        assert took <= HEADER_TIMEOUT + SLACK


def _dribble_head(service: Service, stop: threading.Event) -> None:
    with connect(service) as sock:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
            if stop.is_set() or select.select([sock], [], [], 0.2)[0]:
                return
            with contextlib.suppress(OSError):
                sock.sendall(bytes([byte]))


def _stall_body(service: Service, stop: threading.Event) -> None:
    with connect(service) as sock:
        sock.sendall(
            b"POST /api/leads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        stop.wait(BODY_TIMEOUT + SLACK)


def _oversized_head(service: Service, stop: threading.Event) -> None:
    with connect(service) as sock, contextlib.suppress(OSError):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 65536)
        read_until_closed(sock, SLACK)
    stop.wait(0.05)


def _pipeline_without_reading(service: Service, stop: threading.Event) -> None:
    with connect(service) as sock, contextlib.suppress(OSError):
        sock.sendall(b"GET /f/dry-needling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 200)
        stop.wait(0.5)


def test_real_visitors_keep_getting_201_under_every_attack_at_once(
    tmp_path: Path, record_property: Record
) -> None:
    with leads_process(service_env(tmp_path / "leads.db", LEADS_MAX_CONNECTIONS="200")) as server:
        stop = threading.Event()
        attackers = (
            [_dribble_head] * 10 + [_stall_body] * 10 + [_oversized_head, _pipeline_without_reading]
        )

        def attack(step: Any) -> None:
            deadline = time.monotonic() + 30  # bounded even if the test fails to stop it
            while not stop.is_set() and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    step(server, stop)

        threads = [threading.Thread(target=attack, args=(a,), daemon=True) for a in attackers]
        idle = [connect(server) for _ in range(400)]  # twice the cap, all silent
        try:
            for thread in threads:
                thread.start()
            with visitors_during_attack(
                server, record_property, "every attack at once"
            ) as visitors:
                deadline = time.monotonic() + 20
                while len(visitors.statuses) < 40 and time.monotonic() < deadline:
                    time.sleep(0.1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            for sock in idle:
                sock.close()
        assert len(visitors.statuses) >= 40


def test_serve_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-file limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the child starts with 256
    try:
        with leads_process(service_env(tmp_path / "leads.db")) as server:
            limits = Path(f"/proc/{server.process.pid}/limits").read_text()
            output = server.output()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    expected = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    assert int(line.split()[3]) == expected
    # 256 is below LEADS_MAX_CONNECTIONS (1000), but the raised limit is not: no warning.
    assert ("open-file limit" in output) == (expected < 1000 + 64)
