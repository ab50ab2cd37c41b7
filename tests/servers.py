"""Real servers the tests start themselves: PostgreSQL (from Debian's packages) and the
service itself as a subprocess, each on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests import pgcluster

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


free_port = pgcluster.free_port
postgres_bin = pgcluster.postgres_bin


def unavailable(what: str) -> None:
    """Skip on a developer's machine; fail under CI, where everything must run."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} is not installed (bash .ci/run installs it)")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway cluster (fsync off) for the test run; yields the server's base URL."""
    bindir = postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL")
        raise AssertionError("unreachable")
    with pgcluster.postgres_cluster(bindir, fsync=False) as url:
        yield url


@dataclass
class Service:
    """A `leads` subprocess and where its output goes."""

    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@contextlib.contextmanager
def leads_process(
    env: dict[str, str], *args: str, port: int | None = None, ready: bool = True
) -> Iterator[Service]:
    """``python -m leads <args>`` (default: serve on a free port), as an operator runs it.
    With ``ready``, waits until /healthz answers. Stopped with SIGTERM afterwards, unless the
    test already stopped or killed it."""
    port = port or free_port()
    command = list(args) or ["serve", "--port", str(port)]
    # Output to a file, not a pipe: a pipe nobody reads stalls a chatty server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "leads", *command],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    service = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while ready:
            try:
                if httpx.get(f"{service.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"leads {' '.join(command)} did not start:\n{service.output()}")
            time.sleep(0.05)
        yield service
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def running_service(env: dict[str, str], *, port: int | None = None) -> Iterator[str]:
    """`leads serve` in a subprocess; yields its base URL."""
    with leads_process(env, port=port) as service:
        yield service.url


def redis_binary() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        unavailable("Redis")
    return found


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[str]:
    """A throwaway redis-server on a loopback port, nothing written to disk."""
    binary = redis_binary()
    with tempfile.TemporaryDirectory(prefix="leads-redis-") as workdir:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                        sock.sendall(b"PING\r\n")
                        if sock.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)
