"""Hostile clients on every route create_app serves (listed from the app itself, so a new
route is covered without a new test): bodies of random bytes, 100,000 levels of nested
JSON, 10,000 JSON keys and form fields, a megabyte of astral characters within and over
LEADS_MAX_BODY_BYTES, bidirectional overrides, zero-width characters and NUL bytes in every
field, header and query string, and 2,000 idle connections. None may get a 5xx or hang;
the server's memory stays bounded; real visitors keep getting 201 meanwhile.

Deadlines for slow heads, slow bodies and clients that do not read are tested in
tests/test_connections.py; here slow bodies are sent to every route that takes one at once."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import os
import random
import resource
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from starlette.routing import Mount, Route

from leads.app import create_app
from tests.conftest import make_settings
from tests.servers import Service, leads_process
from tests.support import leads_env, run_leads

pytestmark = pytest.mark.slow  # a real server, megabytes of hostile input, 2,000 sockets

SECRET = "hostile-test-secret-0123456789abcdef"
MAX_BODY = 1_100_000  # a megabyte of astral characters fits; 1.2 MB does not
BODY_TIMEOUT = 2.0
ANSWER_WITHIN = 30.0  # a request not answered in this long has hung (a loaded box is slow)
Record = Callable[[str, object], None]

# Every field any handler reads, public or staff (unknown ones are ignored or refused).
FIELDS = [
    *("name", "email", "phone", "message", "interest", "consent", "website", "page_url"),
    *("referrer", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"),
    *("form_token", "captcha_token", "status", "assigned_to", "text", "into", "csrf_token"),
    *("next", "password", "login_token", "dry_run"),
]
# Every query parameter a handler reads, and values none of them expects.
QUERY = "action assigned_to before cursor done form lead limit next page_url person q status "
QUERY += "view weeks utm_source"
QUERY_NAMES = QUERY.split()
GARBAGE = ["\x00", "\u202e", "-1", "1e999", "9" * 40, "9999-99-99", "../../etc", "AAAA====", "[]"]
ASTRAL = "\U0001f9b4\U0001d54f\U00020000\U0010fffd"  # 4 bytes each in UTF-8
TRICKY = "\u202eevil\u202c\u200b\u200d\ufeff\u2066x\u2069\x00\x00nul"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def env(workdir: Path) -> dict[str, str]:
    return leads_env(
        database_url=f"sqlite:///{workdir / 'leads.db'}",
        secret_key=SECRET,
        rate_limit="off",  # every client here is 127.0.0.1
        log_level="warning",
        max_body_bytes=str(MAX_BODY),
        body_timeout_seconds=str(BODY_TIMEOUT),
        header_timeout_seconds="5",
    )


@pytest.fixture(scope="module")
def token(env: dict[str, str], workdir: Path) -> str:
    assert run_leads("migrate", env=env, cwd=workdir).returncode == 0
    made = run_leads(
        "token", "create", "--name", "hostile", "--scope", "write", env=env, cwd=workdir
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def service(env: dict[str, str], token: str) -> Iterator[Service]:
    with leads_process(env) as running:
        yield running


def port_of(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def exchange(port: int, request: bytes, within: float = ANSWER_WITHIN) -> int:
    """Send ``request`` on a fresh connection; the answer's status (0 if the server closed
    without one). Fails if no answer comes within ``within`` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        deadline = time.monotonic() + within
        while b"\r\n" not in received:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(f"no answer within {within} s to {request[:120]!r}") from None
            if not chunk:
                break
            received += chunk
    return int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0


def request_bytes(
    method: str, target: str, *, body: bytes = b"", headers: dict[str, bytes] | None = None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in (headers or {}).items()]
    if body or method in ("POST", "PATCH"):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def routes() -> list[tuple[str, str]]:
    """(method, path) for every route of create_app, path parameters left as templates."""
    app = create_app(make_settings("sqlite:///:memory:", secret_key=SECRET))
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append(("GET", f"{route.path}/frame.js"))
        elif isinstance(route, Route):
            found += [(m, route.path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def concrete(path: str, lead_id: str, message_id: str) -> str:
    for name, value in (
        ("lead_id", lead_id),
        ("message_id", message_id),
        ("slug", "dry-needling"),
    ):
        path = path.replace(f"{{{name}}}", value).replace(f"{{{name}:uuid}}", value)
    return path


def form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()


def multipart(pairs: list[tuple[str, str]]) -> tuple[bytes, bytes]:
    boundary = "hostile" + uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in pairs
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}".encode()


JSON, FORM = b"application/json", b"application/x-www-form-urlencoded"


def hostile_bodies() -> list[tuple[str, bytes, bytes]]:
    """(what, content type, body): each sent to every route that takes a body."""
    noise = random.Random(20261201).randbytes(8192)
    astral = ASTRAL * (1_000_000 // len(ASTRAL.encode()))  # one megabyte
    over = ASTRAL * (1_200_000 // len(ASTRAL.encode()))
    tricky = [(f, TRICKY) for f in FIELDS]
    many = [(f"f{i}", "x") for i in range(10_000)]
    mp_tricky, mp_type = multipart(tricky)
    mp_many, mp_many_type = multipart(many)
    return [
        ("random bytes as JSON", JSON, noise),
        ("random bytes as a form", FORM, noise),
        ("random bytes as multipart", b"multipart/form-data; boundary=x", noise),
        ("random bytes, no boundary", b"multipart/form-data", noise),
        ("random bytes as octet-stream", b"application/octet-stream", noise),
        ("100,000 levels of [", JSON, b"[" * 100_000),
        ("100,000 levels of {", JSON, b'{"a":' * 100_000),
        ("10,000 JSON keys", JSON, json.dumps({f"k{i}": i for i in range(10_000)}).encode()),
        ("10,000 form fields", FORM, form(many)),
        ("10,000 multipart fields", mp_many_type, mp_many),
        ("1 MB astral in a field", JSON, json.dumps({"name": astral}).encode()),
        (
            "1 MB astral, every field",
            JSON,
            json.dumps({f: astral[:20_000] for f in FIELDS}).encode(),
        ),
        ("1 MB astral in a form", FORM, form([("message", astral)])),
        ("1.2 MB astral (over the cap)", JSON, json.dumps({"message": over}).encode()),
        ("bidi, zero-width, NUL in every field", JSON, json.dumps(dict(tricky)).encode()),
        (
            "the same, raw in JSON strings",
            JSON,
            ("{" + ",".join(f'"{f}":"{TRICKY}"' for f in FIELDS) + "}").encode(),
        ),
        ("bidi, zero-width, NUL in a form", FORM, form(tricky)),
        ("bidi, zero-width, NUL in multipart", mp_type, mp_tricky),
        ("NUL in a field name", JSON, b'{"na\\u0000me": "x", "\\u0000": "\\u0000"}'),
        ("lone surrogates", JSON, b'{"name": "\\ud800", "email": "\\udfff@example.com"}'),
        ("a JSON array", JSON, b'[{"name": "x"}]'),
        ("a huge number", JSON, b'{"consent": 1' + b"0" * 5000 + b', "name": 1e999999}'),
        ("wrong types everywhere", JSON, json.dumps({f: [{"x": None}] for f in FIELDS}).encode()),
    ]


def every_parameter(value: str) -> str:
    return "&".join(f"{name}={quote(value)}" for name in QUERY_NAMES)


def hostile_targets(path: str) -> list[tuple[str, str, dict[str, bytes]]]:
    """(what, request target, extra headers): each sent to every route and method."""
    bidi = TRICKY.replace("\x00", "").encode()
    return [
        (
            "NUL, bidi and bad escapes in the query",
            path + "?q=%00%E2%80%AE%FF%ZZ&status=%00&cursor=%E2%80%AE&limit=%00",
            {},
        ),
        *(
            (f"every query parameter {value!r}", f"{path}?{every_parameter(value)}", {})
            for value in GARBAGE
        ),
        # As many parameters as a 16 KiB head holds, and then 10,000 (431).
        ("1,500 query parameters", path + "?" + "&".join(f"p{i}=1" for i in range(1_500)), {}),
        ("10,000 query parameters", path + "?" + "&".join(f"p{i}=1" for i in range(10_000)), {}),
        ("NUL and bidi in the path", path + "/%00%E2%80%AE", {}),
        (
            "bidi and zero-width bytes in headers",
            path,
            {
                "Origin": b"http://\xe2\x80\xae.example",
                "Referer": b"http://127.0.0.1/?utm_source=" + bidi,
                "Cookie": b"leads_session=" + bidi + b"; __Host-leads_session=\xff",
                "Authorization": b"Bearer leads_" + bidi,
                "If-Match": b'"' + bidi + b'"',
                "Accept-Language": bidi,
                "X-Forwarded-For": bidi,
                "Idempotency-Key": bidi,
                "Sec-Fetch-Dest": bidi,
                "Content-Type": b"application/json; charset=" + bidi,
            },
        ),
        ("NUL in a header", path, {"X-Nul": b"a\x00b"}),
    ]


class Visitors:
    """Real submissions, one after another, in a thread, while the attack goes on."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/api/leads"
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 300
        while not self._stop.is_set() and time.monotonic() < deadline:
            body = {"name": "Ada Lovelace", "email": f"ada.{uuid.uuid4().hex[:10]}@example.com"}
            start = time.monotonic()
            try:
                status = httpx.post(
                    self.url, json={**body, "consent": True}, timeout=30
                ).status_code
            except httpx.TransportError:
                status = 0
            self.latencies.append(time.monotonic() - start)
            self.statuses.append(status)
            self._stop.wait(0.1)

    def __enter__(self) -> Visitors:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def summary(self) -> str:
        ordered = sorted(self.latencies)
        p99 = 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return f"{len(self.statuses)} real submissions meanwhile, p99 {p99:.0f} ms"


def staff_ids(service: Service, token: str) -> tuple[str, str]:
    """A real lead's id and its first notification's, for the routes that name them."""
    made = httpx.post(
        f"{service.url}/api/leads",
        json={"name": "Grace Hopper", "email": "grace@example.com", "consent": True},
    )
    assert made.status_code == 201
    auth = {"Authorization": f"Bearer {token}"}
    listed = httpx.get(f"{service.url}/api/staff/leads", headers=auth).json()["items"]
    lead = httpx.get(f"{service.url}/api/staff/leads/{listed[0]['id']}", headers=auth).json()
    messages = lead.get("notifications") or lead.get("messages") or [{"id": str(uuid.uuid4())}]
    return listed[0]["id"], messages[0]["id"]


def test_hostile_input_on_every_route_gets_no_5xx_and_no_hang(
    service: Service, token: str, record_property: Record
) -> None:
    port, pid = port_of(service), service.process.pid
    lead_id, message_id = staff_ids(service, token)
    auth = {"Authorization": f"Bearer {token}".encode()}
    jobs: list[tuple[str, bytes]] = []
    for method, template in routes():
        path = concrete(template, lead_id, message_id)
        for what, target, headers in hostile_targets(path):
            jobs.append(
                (
                    f"{method} {template}: {what}",
                    request_bytes(method, target, headers={**auth, **headers}),
                )
            )
        if method in ("POST", "PATCH"):
            for what, kind, body in hostile_bodies():
                headers = {**auth, "Content-Type": kind, "Origin": b"http://127.0.0.1"}
                jobs.append(
                    (
                        f"{method} {template}: {what}",
                        request_bytes(method, path, body=body, headers=headers),
                    )
                )
    before = rss_kib(pid)
    started = time.monotonic()
    with Visitors(service.url) as visitors, concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda job: (job[0], exchange(port, job[1])), jobs))
    took = time.monotonic() - started
    after = rss_kib(pid)
    record_property(
        "measured",
        f"{len(jobs)} hostile requests on {len(routes())} routes in {took:.0f} s; "
        f"server RSS {before // 1024} -> {after // 1024} MiB; {visitors.summary()}",
    )
    counts = collections.Counter(status for _, status in statuses)
    record_property("measured", f"hostile requests' answers: {dict(sorted(counts.items()))}")
    failed = [f"{what}: {status}" for what, status in statuses if status >= 500 or status == 0]
    assert not failed, "\n".join(failed)
    assert set(visitors.statuses) == {201}, f"real visitors got {sorted(set(visitors.statuses))}"
    assert after - before < 64 * 1024, f"RSS grew from {before} to {after} KiB"
    assert "Traceback" not in service.output(), service.output()[-6000:]


def test_slow_bodies_on_every_route_at_once_are_answered(
    service: Service, token: str, record_property: Record
) -> None:
    """Every route that takes a body, each sent a head and then part of its body, all at
    once: each is answered (408 at the body deadline), and visitors are served meanwhile."""
    lead_id, message_id = staff_ids(service, token)
    socks = []
    started = time.monotonic()
    for method, template in routes():
        if method not in ("POST", "PATCH"):
            continue
        sock = socket.create_connection(("127.0.0.1", port_of(service)), timeout=10)
        head = request_bytes(
            method,
            concrete(template, lead_id, message_id),
            headers={
                "Authorization": f"Bearer {token}".encode(),
                "Content-Type": JSON if template.startswith("/api/") else FORM,
            },
        ).replace(b"Content-Length: 0", b"Content-Length: 100")
        sock.sendall(head + b'{"name": ')
        socks.append((template, sock))
    with Visitors(service.url) as visitors:
        answers = []
        for template, sock in socks:
            with sock:
                sock.settimeout(BODY_TIMEOUT + ANSWER_WITHIN)
                answers.append((template, sock.recv(65536)[:12]))
    took = time.monotonic() - started
    record_property(
        "measured",
        f"slow bodies on {len(socks)} routes at once: all answered within {took:.1f} s "
        f"({sum(a == b'HTTP/1.1 408' for _, a in answers)} with 408); "
        f"{visitors.summary()}",
    )
    # A route that needs no body (withdraw-consent) or refuses before reading one (not
    # spam, not an admin) answers at once; the rest wait for the body until its deadline.
    # None answers 5xx, none hangs.
    assert [(t, a) for t, a in answers if not a.startswith((b"HTTP/1.1 2", b"HTTP/1.1 4"))] == []
    timed_out = {t for t, a in answers if a == b"HTTP/1.1 408"}
    assert {"/api/leads", "/f/{slug}", "/api/staff/leads/{lead_id}"} <= timed_out, answers
    assert took < BODY_TIMEOUT + ANSWER_WITHIN
    assert set(visitors.statuses) == {201}


def test_two_thousand_idle_connections_leave_room_for_visitors(
    service: Service, record_property: Record
) -> None:
    """Twice LEADS_MAX_CONNECTIONS (1,000) connections that send nothing: the server (whose
    open-file limit `leads serve` raised) closes the longest-idle to make room, and real
    visitors keep getting 201."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2_200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4_096), hard))
    pid = service.process.pid
    before = rss_kib(pid)
    socks: list[socket.socket] = []
    try:
        with Visitors(service.url) as visitors:
            for _ in range(2_000):
                sock = socket.socket()
                sock.settimeout(10)
                sock.connect(("127.0.0.1", port_of(service)))
                socks.append(sock)
            peak = rss_kib(pid)
            open_files = len(os.listdir(f"/proc/{pid}/fd"))
            # A visitor after the flood still gets in: the cap closed the longest-idle ones.
            answer = httpx.post(
                f"{service.url}/api/leads",
                json={"name": "Late Visitor", "email": "late@example.com", "consent": True},
                timeout=30,
            )
        assert answer.status_code == 201
    finally:
        for sock in socks:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    record_property(
        "measured",
        f"2,000 idle connections: server fds {open_files} (cap 1,000), "
        f"RSS {before // 1024} -> {peak // 1024} MiB; {visitors.summary()}",
    )
    assert open_files <= 1_000 + 64
    assert set(visitors.statuses) == {201}, sorted(set(visitors.statuses))
    assert peak - before < 64 * 1024
