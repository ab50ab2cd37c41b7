"""A throwaway PostgreSQL cluster from Debian's packages, for the tests and the benchmark
alike. Plain Python (no pytest), so bench/ can import it too.

initdb refuses to run as root, so as root the cluster runs as user ``postgres`` (runuser),
in a temporary directory that user can enter. The tests run it with fsync off (they need
no durability and run faster); the benchmark keeps fsync on, so that both engines it
compares make every acknowledged lead durable (SQLite runs with synchronous=FULL)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory, or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class Cluster:
    """A running cluster the caller may stop and start again (the fault tests do)."""

    url: str
    run: Callable[..., None]
    pg_ctl: list[str]

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: every backend killed, no checkpoint, as if the server died."""
        self.run(*self.pg_ctl, "-m", mode, "-w", "stop")

    def start(self) -> None:
        self.run(*self.pg_ctl, "-w", "-t", "60", "start")


@contextlib.contextmanager
def postgres_cluster(bindir: Path, *, fsync: bool) -> Iterator[str]:
    """Start a cluster; yield its base URL, ``postgresql://postgres@127.0.0.1:PORT``."""
    with stoppable_cluster(bindir, fsync=fsync) as cluster:
        yield cluster.url


@contextlib.contextmanager
def stoppable_cluster(bindir: Path, *, fsync: bool) -> Iterator[Cluster]:
    """Start a cluster; yield it, to be stopped and started again at will."""
    workdir = Path(tempfile.mkdtemp(prefix="leads-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), workdir / "data"

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, timeout=120)

    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
    run(*initdb, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
    options = f"-p {port} -h {HOST} -k {workdir} -c max_connections=200"
    if not fsync:
        options += " -c fsync=off"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-o", options]
    cluster = Cluster(f"postgresql://postgres@{HOST}:{port}", run, pg_ctl)
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
