"""The intake benchmark: the same unique submissions against a bare Starlette app, a naive
tutorial-style app (bench/naive.py) and ``leads serve``, on SQLite and on PostgreSQL, in one run.

Per repeat, the bare app, then per engine (a fresh database each time) the naive app,
``leads serve`` with LEADS_DISPATCHER=worker (intake alone; a `leads worker` process sends
the emails) and ``leads serve`` as it runs by default (emails sent in process): cold start
to the first 200 on /healthz (3 starts on new databases, then a restart on the last one's,
which is kept), idle RSS, submit-to-inbox
latency at 20 req/s (leads only), an open-loop run at 200 req/s, and a closed-loop wrk run
at 64 connections while RSS is sampled every 100 ms, the server's CPU (utime+stime from
/proc, process and descendants) is read before and after, and (leads only) a 10 req/s probe
measures submit-to-inbox under that load while every email of the run is waited for. Every
submission has its own email address and phone number (bench/unique.lua, bench/loadgen.py).

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
PROBE_RATE = 10.0  # the submit-to-inbox probe beside wrk's 64 connections
COLD_STARTS = 3
MAIL_WAIT = 20.0  # longest wait for the emails of a phase to arrive
# Never reuse a connection idle this long: uvicorn closes one idle for 5 s, and a request
# written into it as it closes fails (status 0) through no fault of the server's.
MAX_IDLE = 4.0
# Visitor numbers per phase; each server gets a fresh database, so ranges restart per server.
FIRST_INBOX, FIRST_OPEN, FIRST_PROBE, FIRST_CLOSED = 0, 10_000, 50_000, 100_000


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


async def closed_loop(
    server: targets.Server, duration: int, tag: str, inbox: Path | None = None
) -> dict[str, Any]:
    """wrk at 64 connections, with the server's RSS sampled every 100 ms and its CPU read
    before and after. With ``inbox``, a light open-loop probe (PROBE_RATE) runs beside wrk
    for submit-to-inbox latency under this load, and every email of the run is waited for."""
    stop = asyncio.Event()
    sampler = asyncio.create_task(targets.sample_peak_rss(server.pid, stop))
    before_mail = set(targets.read_inbox(inbox)) if inbox is not None else set()
    worker_pid = server.worker.pid if server.worker is not None else None
    cpu_start = targets.cpu_seconds(server.pid)
    worker_start = targets.cpu_seconds(worker_pid) if worker_pid else 0.0
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "10s"],
        *["--latency", "-s", str(targets.BENCH / "unique.lua")],
        *[f"http://{targets.HOST}:{server.port}", "--", str(FIRST_CLOSED)],
        *[str(WRK_THREADS), tag],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    probe = None
    if inbox is not None:  # starts with wrk, ends a second before it
        probe = asyncio.create_task(
            loadgen.open_loop(
                targets.HOST, server.port, rate=PROBE_RATE, duration=max(1, duration - 1),
                first=FIRST_PROBE, tag=tag + "p", max_idle=MAX_IDLE,
            )
        )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), duration + 60)
    cpu_end = targets.cpu_seconds(server.pid)
    stop.set()
    peak = await sampler
    probe_run = await probe if probe is not None else None
    during = len(set(targets.read_inbox(inbox)) - before_mail) if inbox is not None else 0
    text = output.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("wrk-json ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed:\n{text}")
    raw = json.loads(lines[-1].removeprefix("wrk-json "))
    socket_errors = sum(raw[k] for k in ("connect", "read", "write", "timeout"))
    answered = raw["requests"] + (len(probe_run.samples) if probe_run else 0)
    result: dict[str, Any] = {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": raw["status"],
        "socket_errors": socket_errors,
        "errors": raw["status"] + socket_errors,
        "rss_peak_mb": round(peak / 2**20, 1),
        # Server CPU (utime+stime, process and descendants) over wrk's run, per answer.
        "cpu_ms_per_request": round((cpu_end - cpu_start) * 1000 / max(1, answered), 4),
        "wrk_output": text,
    }
    if inbox is not None and probe_run is not None:
        accepted = raw["requests"] - raw["status"] + len(probe_run.ok)
        result["inbox"] = await mail_latency(server, inbox, probe_run)
        arrived, quiet = await wait_for_count(inbox, before_mail, accepted)
        result["mail_delivered_during_run"] = during
        result["mail"] = {
            "accepted": accepted,
            "arrived": arrived,
            # wrk stops with requests in flight that the server may still store: those
            # emails come on top, so more emails than 201s is not an error.
            "missing": max(0, accepted - arrived),
            "seconds_to_last": round(quiet - started, 2),
        }
        # Until the last email is in: the whole cost of a lead, its email included.
        result["cpu_ms_per_lead_with_email"] = round(
            (targets.cpu_seconds(server.pid) - cpu_start) * 1000 / max(1, answered), 4
        )
        if worker_pid:
            result["worker_cpu_ms_per_lead"] = round(
                (targets.cpu_seconds(worker_pid) - worker_start) * 1000 / max(1, answered), 4
            )
            result["cpu_ms_per_lead_with_email"] = round(
                result["cpu_ms_per_lead_with_email"] + result["worker_cpu_ms_per_lead"], 4
            )
        result["probe"] = {
            "rate": PROBE_RATE,
            "requests": len(probe_run.samples),
            "errors": probe_run.errors,
        }
    return result


async def wait_for_count(inbox: Path, before: set[str], expected: int) -> tuple[int, float]:
    """Waits (at most MAIL_WAIT s) until ``expected`` new leads have their email; how many
    came, and when the last one did."""
    deadline = time.monotonic() + MAIL_WAIT
    while True:
        arrivals = targets.read_inbox(inbox)
        new = [at for lead, at in arrivals.items() if lead not in before]
        if len(new) >= expected or time.monotonic() > deadline:
            return len(new), max(new, default=time.monotonic())
        await asyncio.sleep(0.1)


def lead_ids(run: loadgen.OpenLoopRun, leads: dict[str, str] | None = None) -> dict[str, float]:
    """Id -> send time, for every 201 of an open-loop run. A 201 names the receipt and the
    clinic's email the lead: ``leads`` (targets.leads_of_receipts) maps one to the other."""
    receipts = {json.loads(s.body)["id"]: s.sent for s in run.ok}
    leads = leads or {}
    return {leads.get(receipt, receipt): sent for receipt, sent in receipts.items()}


async def sent_leads(server: targets.Server, run: loadgen.OpenLoopRun) -> dict[str, float]:
    """Lead id -> send time, for every 201 of an open-loop run on ``leads serve``."""
    assert server.database_url is not None
    leads = await asyncio.to_thread(targets.leads_of_receipts, server.database_url)
    return lead_ids(run, leads)


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


async def mail_latency(
    server: targets.Server, inbox: Path, run: loadgen.OpenLoopRun
) -> dict[str, Any]:
    sent = await sent_leads(server, run)
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
    """Starts the server COLD_STARTS times, each on a new database (``start(None)``), then
    once more on the last one's database, migrated by then (``start(url)``: a restart, as
    after every deploy), and keeps that one running. So the phases after it measure a server
    in the state it stays in: on PostgreSQL a first start runs Alembic's upgrade in the
    serving process, whose modules then stay loaded (~8 MB) until it restarts."""
    times = []
    for _ in range(COLD_STARTS):
        server: targets.Server = start(None)
        times.append(server.cold_start)
        server.stop()
    return start(server.database_url), times


async def measure(
    name: str, start: Any, inbox: Path | None, args: argparse.Namespace, repeat: int
) -> dict[str, Any]:
    """All phases on one kind of server; ``inbox`` is None for the bare app."""
    d = args.duration
    tag = f"r{repeat}{name[:2]}"
    server, colds = start_cold(start)
    result: dict[str, Any] = {"cold_start_ms": ms(statistics.median(colds))}
    result["cold_starts_ms"] = [ms(t) for t in colds]
    result["restart_ms"] = ms(server.cold_start)
    try:
        await asyncio.sleep(1.0)
        result["rss_idle_mb"] = round(targets.rss_bytes(server.pid) / 2**20, 1)
        if inbox is not None:
            _, light = await open_loop(server, INBOX_RATE, d, FIRST_INBOX, tag + "i")
            result["inbox"] = await mail_latency(server, inbox, light)
        result["open"], run = await open_loop(server, OPEN_RATE, d, FIRST_OPEN, tag + "o")
        if inbox is not None:
            result["inbox_at_open_rate"] = await mail_latency(server, inbox, run)
        result["closed"] = await closed_loop(server, d, tag + "c", inbox)
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited during the run; see {server.log}")
        if server.worker is not None and server.worker.poll() is not None:
            raise RuntimeError(f"{name}'s leads worker exited during the run")
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

    variants = [f"{e}{kind}" for e in engines for kind in ("-naive", "-worker", "")]
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], **{v: [] for v in variants}}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leads-bench-")))
        smtp_port, inbox = stack.enter_context(targets.smtp_sink(workdir))
        pg_base = (
            stack.enter_context(targets.postgres_cluster()) if "postgresql" in engines else None
        )
        databases = iter(range(10_000))

        def new_database(engine: str) -> str:
            if engine == "sqlite":
                return f"sqlite:///{workdir}/leads-{next(databases)}.db"
            assert pg_base is not None
            return targets.create_database(pg_base, f"bench{next(databases)}")

        for repeat in range(args.repeat):
            runs["bare"].append(
                await measure("bare", lambda _: targets.bare_server(workdir), None, args, repeat)
            )
            for variant in variants:
                engine, _, kind = variant.partition("-")

                def start(
                    url: str | None, engine: str = engine, kind: str = kind
                ) -> targets.Server:
                    if url is None:  # else a restart, on the database the last start made
                        url = new_database(engine)
                    if kind == "naive":
                        return targets.naive_server(workdir, url)
                    return targets.leads_server(workdir, url, smtp_port, worker=kind == "worker")

                mail = None if kind == "naive" else inbox
                runs[variant].append(await measure(variant, start, mail, args, repeat))

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
