"""What the benchmark runs against: the bare baseline, ``leads serve``, a throwaway PostgreSQL
cluster, and the SMTP sink, each a subprocess on a free 127.0.0.1 port; plus the
measurements taken on a process (cold start, RSS).

PostgreSQL is started by the same code as the tests' (tests/pgcluster.py), with fsync left
on: SQLite runs with synchronous=FULL, so both engines make every acknowledged lead durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for tests/
from tests import pgcluster

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"  # everything stays on loopback
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def healthz_ok(port: int) -> bool:
    """One raw GET /healthz; True on a 200. Raw sockets keep the polling cheap and exact."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cold_start: float  # seconds from spawn to the first 200 on /healthz
    # `leads worker`, delivering this server's notifications (LEADS_DISPATCHER=worker)
    worker: subprocess.Popen[bytes] | None = None
    database_url: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        for process in (self.process, self.worker):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (self.process, self.worker):
            if process is None:
                continue
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def spawn(name: str, command: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    """Start a server and wait (polling every 5 ms) for its first 200 on /healthz."""
    with open(log, "ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(
            command, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = started + START_TIMEOUT
    while not healthz_ok(port):
        if process.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            raise RuntimeError(f"{name} did not start; see {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.005)
    return Server(name, port, process, log, time.monotonic() - started)


def bare_server(workdir: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(BENCH / "bare.py"), "--port", str(port)]
    return spawn("bare", command, dict(os.environ), port, workdir / "bare.log")


def naive_server(workdir: Path, database_url: str) -> Server:
    """bench/naive.py, the tutorial-style reference, on the same database engine."""
    port = free_port()
    url = database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    if url.startswith("sqlite:"):
        url = url.replace("sqlite:", "sqlite+aiosqlite:", 1)
    command = [sys.executable, str(BENCH / "naive.py"), "--port", str(port), "--database", url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # it reuses leads' own validation
    server = spawn("naive", command, env, port, workdir / "naive.log")
    server.database_url = database_url
    return server


def leads_server(
    workdir: Path,
    database_url: str,
    smtp_port: int,
    extra_env: dict[str, str] | None = None,
    *,
    worker: bool = False,
) -> Server:
    """``leads serve``; ``extra_env`` overrides the settings below (bench/flood.py). With
    ``worker``, LEADS_DISPATCHER=worker and a `leads worker` process delivers the emails."""
    port = free_port()
    env = {
        **os.environ,
        "LEADS_DATABASE_URL": database_url,
        "LEADS_SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        "LEADS_SMTP_URL": f"smtp://{HOST}:{smtp_port}?starttls=off",
        "LEADS_INBOX": "desk@clinic.example",
        "LEADS_RATE_LIMIT": "off",
        "LEADS_LOG_LEVEL": "warning",
        "LEADS_PUBLIC_URL": f"http://{HOST}:{port}",
        "LEADS_SHUTDOWN_GRACE_SECONDS": "1",
        **({"LEADS_DISPATCHER": "worker"} if worker else {}),
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "leads", "serve", "--host", HOST, "--port", str(port)]
    server = spawn("leads", command, env, port, workdir / "leads.log")
    server.database_url = database_url
    if worker:  # started once serve has migrated the database
        with open(workdir / "worker.log", "ab") as out:
            server.worker = subprocess.Popen(
                [sys.executable, "-m", "leads", "worker"],
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    return server


def leads_of_receipts(database_url: str) -> dict[str, str]:
    """Receipt id (what a 201 says) -> lead id (what the clinic's email links to), for every
    lead of the database: visitors are told receipts, never lead ids."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT receipt_id, id FROM leads").fetchall()
    else:
        import asyncpg

        async def fetch() -> list[tuple[object, object]]:
            connection = await asyncpg.connect(database_url)
            try:
                rows = await connection.fetch("SELECT receipt_id, id FROM leads")
                return [tuple(r) for r in rows]
            finally:
                await connection.close()

        rows = asyncio.run(fetch())
    return {str(uuid.UUID(str(receipt))): str(uuid.UUID(str(lead))) for receipt, lead in rows}


def rss_bytes(pid: int) -> int:
    """VmRSS of a process and its children (``leads serve`` with one worker has none)."""
    total = 0
    for one in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) and of all its descendants, in seconds."""
    ticks = 0
    for one in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Children, grandchildren and so on (uvicorn's reloader and workers, if any)."""
    found, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        found += kids
        todo += kids
    return found


def children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.split("/")[2]))
    return found


async def sample_peak_rss(pid: int, stop: asyncio.Event, every: float = 0.1) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, rss_bytes(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
    return max(peak, rss_bytes(pid))


@contextlib.contextmanager
def smtp_sink(workdir: Path) -> Iterator[tuple[int, Path]]:
    """bench/sink.py in its own process; yields its port and the file it records to."""
    port, record = free_port(), workdir / "inbox.txt"
    record.touch()
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "sink.py"), str(port), str(record)],
        stdout=subprocess.PIPE,
        stderr=open(workdir / "sink.log", "wb"),  # noqa: SIM115 - the child owns it
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the SMTP sink did not start; see {workdir / 'sink.log'}")
        yield port, record
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_inbox(record: Path) -> dict[str, float]:
    """Lead id -> arrival time of its first email."""
    arrivals: dict[str, float] = {}
    for line in record.read_text().splitlines():
        when, _, lead = line.partition(" ")
        arrivals.setdefault(lead, float(when))
    return arrivals


def postgres_bin() -> Path | None:
    return pgcluster.postgres_bin()


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway cluster (fsync on); yields its base URL, postgresql://postgres@host:port."""
    bindir = pgcluster.postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    with pgcluster.postgres_cluster(bindir, fsync=True) as url:
        yield url


def create_database(base_url: str, name: str) -> str:
    """A new, empty database on the cluster; returns its URL."""
    bindir = postgres_bin()
    assert bindir is not None
    host_port = base_url.rpartition("@")[2]
    host, _, port = host_port.partition(":")
    command = [str(bindir / "createdb"), "-h", host, "-p", port, "-U", "postgres", name]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return f"{base_url}/{name}"
