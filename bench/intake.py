"""The intake benchmark: the same unique submissions against a bare Starlette app
and against ``leads serve`` on SQLite and on PostgreSQL, in one run.

Per repeat, for the bare app and then for each engine (a fresh database each time):
cold start to the first 200 on /healthz (3 starts, the last one is kept), idle RSS,
submit-to-inbox latency at 20 req/s (leads only), an open-loop run at 200 req/s, and a
closed-loop wrk run at 64 connections while RSS is sampled every 100 ms. Every submission
has its own email address and phone number (bench/unique.lua, bench/loadgen.py).

    python bench/intake.py [--quick] [--engines sqlite,postgresql] [--repeat 3]

Use ``bash bench/run``, which installs what this needs first. Results: a JSON file in
bench/results/ and a markdown summary on stdout (bench/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import loadgen
import report
import targets

CONNECTIONS = 64
WRK_THREADS = 2
OPEN_RATE = 200.0
INBOX_RATE = 20.0
COLD_STARTS = 3
MAIL_WAIT = 20.0  # longest wait for the emails of a phase to arrive
# Never reuse a connection idle this long: uvicorn closes one idle for 5 s, and a request
# written into it as it closes fails (status 0) through no fault of the server's.
MAX_IDLE = 4.0
# Visitor numbers per phase; each server gets a fresh database, so ranges restart per server.
FIRST_INBOX, FIRST_OPEN, FIRST_CLOSED = 0, 10_000, 100_000


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, or None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def check_phone_numbers() -> None:
    """The generated numbers must all be valid, or the service would answer 422."""
    import phonenumbers

    sample = [0, loadgen.PHONE_NUMBERS - 1, *random.sample(range(loadgen.PHONE_NUMBERS), 500)]
    for i in sample:
        phone = json.loads(loadgen.submission(i, "x"))["phone"]
        if not phonenumbers.is_valid_number(phonenumbers.parse(phone)):
            raise SystemExit(f"bench: generated phone number {phone} is not valid")


async def closed_loop(server: targets.Server, duration: int, tag: str) -> dict[str, Any]:
    """wrk at 64 connections, with the server's RSS sampled every 100 ms."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(targets.sample_peak_rss(server.pid, stop))
    process = await asyncio.create_subprocess_exec(
        *["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "10s"],
        *["--latency", "-s", str(targets.BENCH / "unique.lua")],
        *[f"http://{targets.HOST}:{server.port}", "--", str(FIRST_CLOSED)],
        *[str(WRK_THREADS), tag],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), duration + 60)
    stop.set()
    peak = await sampler
    text = output.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("wrk-json ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed:\n{text}")
    raw = json.loads(lines[-1].removeprefix("wrk-json "))
    socket_errors = sum(raw[k] for k in ("connect", "read", "write", "timeout"))
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": raw["status"],
        "socket_errors": socket_errors,
        "errors": raw["status"] + socket_errors,
        "rss_peak_mb": round(peak / 2**20, 1),
        "wrk_output": text,
    }


def lead_ids(run: loadgen.OpenLoopRun) -> dict[str, float]:
    """Lead id -> send time, for every 201 of an open-loop run."""
    return {json.loads(s.body)["id"]: s.sent for s in run.ok}


async def wait_for_mail(inbox: Path, sent: dict[str, float]) -> dict[str, float]:
    """Waits (at most MAIL_WAIT s) until every lead in ``sent`` has its email; arrivals."""
    deadline = time.monotonic() + MAIL_WAIT
    while True:
        arrivals = targets.read_inbox(inbox)
        if all(lead in arrivals for lead in sent) or time.monotonic() > deadline:
            return arrivals
        await asyncio.sleep(0.1)


async def open_loop(
    server: targets.Server, rate: float, duration: int, first: int, tag: str
) -> tuple[dict[str, Any], loadgen.OpenLoopRun]:
    run = await loadgen.open_loop(
        targets.HOST, server.port, rate=rate, duration=duration, first=first, tag=tag,
        max_idle=MAX_IDLE,
    )  # fmt: skip
    latencies = [s.done - s.due for s in run.ok]
    lags = [s.sent - s.due for s in run.samples]
    summary = {
        "rate": rate,
        "requests": len(run.samples),
        "errors": run.errors,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies, default=None)),
        "client_lag_p99_ms": ms(percentile(lags, 99)),
        "connections": run.connections_opened,
        "error_statuses": {
            str(status): sum(1 for s in run.samples if s.status == status)
            for status in sorted({s.status for s in run.samples if not 200 <= s.status < 300})
        },
    }
    return summary, run


async def mail_latency(inbox: Path, run: loadgen.OpenLoopRun) -> dict[str, Any]:
    sent = lead_ids(run)
    arrivals = await wait_for_mail(inbox, sent)
    delays = [arrivals[lead] - at for lead, at in sent.items() if lead in arrivals]
    return {
        "leads": len(sent),
        "missing": len(sent) - len(delays),
        "p50_ms": ms(percentile(delays, 50)),
        "p99_ms": ms(percentile(delays, 99)),
        "max_ms": ms(max(delays, default=None)),
    }


def start_cold(start: Any) -> tuple[targets.Server, list[float]]:
    """Starts the server COLD_STARTS times (a fresh database each time, from ``start``);
    keeps the last one running."""
    times = []
    for attempt in range(COLD_STARTS):
        server: targets.Server = start(attempt)
        times.append(server.cold_start)
        if attempt < COLD_STARTS - 1:
            server.stop()
    return server, times


async def measure(
    name: str, start: Any, inbox: Path | None, args: argparse.Namespace, repeat: int
) -> dict[str, Any]:
    """All phases on one kind of server; ``inbox`` is None for the bare app."""
    d = args.duration
    tag = f"r{repeat}{name[:2]}"
    server, colds = start_cold(start)
    result: dict[str, Any] = {"cold_start_ms": ms(statistics.median(colds))}
    result["cold_starts_ms"] = [ms(t) for t in colds]
    try:
        await asyncio.sleep(1.0)
        result["rss_idle_mb"] = round(targets.rss_bytes(server.pid) / 2**20, 1)
        if inbox is not None:
            _, light = await open_loop(server, INBOX_RATE, d, FIRST_INBOX, tag + "i")
            result["inbox"] = await mail_latency(inbox, light)
        result["open"], run = await open_loop(server, OPEN_RATE, d, FIRST_OPEN, tag + "o")
        if inbox is not None:
            result["inbox_at_open_rate"] = await mail_latency(inbox, run)
            before = len(targets.read_inbox(inbox))
        result["closed"] = await closed_loop(server, d, tag + "c")
        if inbox is not None:
            delivered = len(targets.read_inbox(inbox)) - before
            result["closed"]["mail_delivered_during_run"] = delivered
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited during the run; see {server.log}")
        if args.profile and inbox is not None and repeat == args.repeat - 1:
            where = args.results.with_name(f"{args.results.name}-{name}-profile.txt")
            result["profile"] = await profile(server, d, tag + "p", where)
    finally:
        server.stop()
    print(f"bench: repeat {repeat + 1} {name}: {report.one_line(result)}", file=sys.stderr)
    return result


async def profile(server: targets.Server, duration: int, tag: str, out: Path) -> str:
    """py-spy on the server during an extra (unreported) closed-loop run: collapsed stacks."""
    py_spy = Path(sys.executable).with_name("py-spy")
    spy = await asyncio.create_subprocess_exec(
        *[str(py_spy), "record", "--nonblocking", "-r", "200", "-d", str(duration)],
        *["-f", "raw", "-o", str(out), "--pid", str(server.pid)],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await closed_loop(server, duration, tag)
    _, errors = await asyncio.wait_for(spy.communicate(), duration + 30)
    if spy.returncode != 0:
        print(f"bench: py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
    return str(out)


def machine() -> dict[str, Any]:
    def first(path: str, key: str) -> str:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
        return "?"

    def command(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except OSError:
            return "?"
        return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout else "?"

    import starlette
    import uvicorn

    pg = targets.postgres_bin()
    return {
        "nproc": len(__import__("os").sched_getaffinity(0)),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": command("uname", "-r"),
        "python": sys.version.split()[0],
        "uvicorn": uvicorn.__version__,
        "starlette": starlette.__version__,
        "wrk": command("wrk", "-v"),
        "postgresql": command(str(pg / "postgres"), "--version") if pg else None,
        "commit": command("git", "-C", str(targets.ROOT), "rev-parse", "--short", "HEAD"),
        "uncommitted": subprocess.run(
            ["git", "-C", str(targets.ROOT), "status", "--porcelain", "--", "leads", "alembic"],
            capture_output=True,
            text=True,
        ).stdout.split("\n")[:-1],
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description="leads intake benchmark")
    parser.add_argument("--quick", action="store_true", help="5 s phases, one repeat")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=None, help="repeats (default 3; quick 1)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per load phase")
    parser.add_argument("--profile", action="store_true", help="py-spy the service (extra run)")
    args = parser.parse_args()
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.duration = args.duration or (5 if args.quick else 10)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(engines) - {"sqlite", "postgresql"}:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bash bench/run installs it)")
    check_phone_numbers()
    at_start = machine()
    args.results = targets.ROOT / "bench" / "results"
    args.results.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results = args.results / stamp

    runs: dict[str, list[dict[str, Any]]] = {"bare": [], **{e: [] for e in engines}}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leads-bench-")))
        smtp_port, inbox = stack.enter_context(targets.smtp_sink(workdir))
        pg_base = (
            stack.enter_context(targets.postgres_cluster()) if "postgresql" in engines else None
        )
        databases = iter(range(10_000))
        for repeat in range(args.repeat):
            runs["bare"].append(
                await measure("bare", lambda _: targets.bare_server(workdir), None, args, repeat)
            )
            for engine in engines:

                def start(attempt: int, engine: str = engine) -> targets.Server:
                    n = next(databases)
                    if engine == "sqlite":
                        url = f"sqlite:///{workdir}/leads-{n}.db"
                    else:
                        assert pg_base is not None
                        url = targets.create_database(pg_base, f"bench{n}")
                    return targets.leads_server(workdir, url, smtp_port)

                runs[engine].append(await measure(engine, start, inbox, args, repeat))

    results = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["bash bench/run", *sys.argv[1:]]),
        "options": {k: str(v) for k, v in vars(args).items()},
        "machine": at_start,
        "runs": runs,
    }
    at_end = machine()
    if (at_end["commit"], at_end["uncommitted"]) != (at_start["commit"], at_start["uncommitted"]):
        # Each server start loads the code as it is then: say that it moved during the run.
        results["code_changed_during_run"] = {"commit": at_end["commit"]}
    results["medians"] = report.medians(runs)
    path = args.results.with_suffix(".json")
    path.write_text(json.dumps(results, indent=2))
    print(report.markdown(results))
    print(f"\nraw results: {path.relative_to(targets.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
