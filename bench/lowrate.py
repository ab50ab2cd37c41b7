"""The server's CPU per lead at the rates a clinic's own site sends: a few leads a second,
one at a time, where the intake benchmark's 64 connections fill every transaction.

    .venv/bin/python bench/lowrate.py                       # 5, 20 and 50 req/s, 3 repeats
    .venv/bin/python bench/lowrate.py --rates 20 --seconds 20 --repeat 5

Per rate and repeat, one after the other, each a fresh server on a fresh SQLite database,
driven open loop (bench/loadgen.py: unique visitors on a fixed schedule, a few keep-alive
connections) for ``--seconds`` after a short warm-up:

- **bare**: bench/bare.py, the baseline, at the same rate;
- **intake**: `leads serve` with LEADS_DISPATCHER=worker and no worker (nothing is sent);
- **default**: `leads serve` as it runs by default, each lead's email sent in process to
  bench/sink.py; the measure ends when the last of the run's emails is in.

The server's utime+stime (process and children, from /proc) over the run, per request
answered, and as a ratio to bare's at the same rate in the same repeat; medians over repeats.
Also the p50 and p99 of the answers' latency; errors count failed requests and emails that
never came. Not a test: the machine is shared, so figures move with its load; compare the
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import intake
import loadgen
import targets

WARM_SECONDS = 2.0


async def measure(
    server: targets.Server, rate: float, seconds: float, inbox: Path | None
) -> dict[str, float]:
    """One open-loop run against ``server`` after a warm-up: CPU per request answered and
    latency; with ``inbox`` (a fresh one), the CPU until every email of the run is in."""

    def visitors(duration: float, first: int, tag: str) -> Any:
        return loadgen.open_loop(
            targets.HOST, server.port, rate=rate, duration=duration, first=first, tag=tag,
            max_idle=intake.MAX_IDLE,
        )  # fmt: skip

    warm = await visitors(WARM_SECONDS, 0, "w")
    if inbox is not None:
        await intake.wait_for_count(inbox, set(), len(warm.ok))
    cpu = targets.cpu_seconds(server.pid)
    run = await visitors(seconds, 100_000, "r")
    answered = len(run.ok)
    missing = 0
    if inbox is not None:
        came, _ = await intake.wait_for_count(inbox, set(), len(warm.ok) + answered)
        missing = len(warm.ok) + answered - came
    used = targets.cpu_seconds(server.pid) - cpu
    latency = sorted(s.done - s.due for s in run.ok)
    return {
        "cpu_ms": 1000 * used / max(1, answered),
        "p50_ms": 1000 * latency[len(latency) // 2] if latency else 0.0,
        "p99_ms": 1000 * latency[int(len(latency) * 0.99)] if latency else 0.0,
        "errors": float(run.errors + missing),
    }


async def one_repeat(rate: float, seconds: float) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="leads-lowrate-") as tmp:
        workdir = Path(tmp)
        server = targets.bare_server(workdir)
        try:
            results["bare"] = await measure(server, rate, seconds, None)
        finally:
            server.stop()
        with targets.smtp_sink(workdir) as (smtp_port, inbox):
            for name, extra in (("intake", {"LEADS_DISPATCHER": "worker"}), ("default", {})):
                url = f"sqlite:///{workdir / name}.db"
                server = targets.leads_server(workdir, url, smtp_port, extra)
                try:
                    await asyncio.sleep(1.0)
                    results[name] = await measure(
                        server, rate, seconds, inbox if not extra else None
                    )
                finally:
                    server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5,20,50", help="requests per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| rate | variant | CPU ms per lead | ratio to bare | p50 / p99 ms | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for rate in (float(r) for r in args.rates.split(",")):
        runs = [asyncio.run(one_repeat(rate, args.seconds)) for _ in range(args.repeat)]
        for variant in ("bare", "intake", "default"):
            cpu = statistics.median(r[variant]["cpu_ms"] for r in runs)
            ratio = statistics.median(r[variant]["cpu_ms"] / r["bare"]["cpu_ms"] for r in runs)
            p50 = statistics.median(r[variant]["p50_ms"] for r in runs)
            p99 = statistics.median(r[variant]["p99_ms"] for r in runs)
            errors = sum(r[variant]["errors"] for r in runs)
            print(
                f"| {rate:g} | {variant} | {cpu:.2f} | {ratio:.1f}x | {p50:.1f} / {p99:.1f} |"
                f" {errors:g} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
