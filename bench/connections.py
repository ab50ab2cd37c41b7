"""The cost of leads' connection limits (leads/web/connections.py): the bare app of
bench/bare.py served by uvicorn's own httptools protocol and by the bounded one, driven by
wrk over keep-alive connections, alternately, three rounds each. A bare app answers in tens
of microseconds, so the protocol's share of the work is as large here as it can be.

    python bench/connections.py [--rounds 3] [--seconds 5] [--connections 32]

Prints, per protocol, the median req/s and server CPU per request, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import targets

TICKS = os.sysconf("SC_CLK_TCK")


def serve(protocol: str, port: int) -> None:
    import uvicorn

    from leads.settings import Settings
    from leads.web.connections import protocol_factory

    http = protocol_factory(Settings(_env_file=None)) if protocol == "bounded" else "httptools"
    uvicorn.run(
        "bare:create_app",
        factory=True,
        host=targets.HOST,
        port=port,
        workers=1,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        http=http,  # type: ignore[arg-type]
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def one_round(protocol: str, seconds: int, connections: int) -> tuple[float, float]:
    port = targets.free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", protocol, "--port", str(port)],
        cwd=targets.BENCH,
        env={**os.environ, "PYTHONPATH": f"{targets.BENCH}:{targets.ROOT}"},
    )
    try:
        deadline = time.monotonic() + targets.START_TIMEOUT
        while not targets.healthz_ok(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {protocol} server did not start")
            time.sleep(0.05)
        before = cpu_seconds(process.pid)
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                f"http://{targets.HOST}:{port}/healthz",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        cpu = cpu_seconds(process.pid) - before
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        return requests / seconds, 1e6 * cpu / requests
    finally:
        process.terminate()
        process.wait(timeout=targets.STOP_TIMEOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve", choices=["plain", "bounded"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "bounded": []}
    for _ in range(args.rounds):
        for protocol in results:
            results[protocol].append(one_round(protocol, args.seconds, args.connections))
    medians = {
        p: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for p, runs in results.items()
    }
    print("| protocol | req/s (median) | server CPU per request (median) | runs (req/s) |")
    print("| --- | --- | --- | --- |")
    for protocol, (rate, cpu) in medians.items():
        runs = ", ".join(f"{r:.0f}" for r, _ in results[protocol])
        print(f"| {protocol} | {rate:.0f} | {cpu:.1f} µs | {runs} |")
    (plain_rate, plain_cpu), (rate, cpu) = medians["plain"], medians["bounded"]
    print(
        f"\nbounded / plain: req/s {rate / plain_rate:.3f}x, CPU per request {cpu / plain_cpu:.3f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
