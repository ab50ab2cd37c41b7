"""Staff reads at 100,000 leads: the staff list, a filtered list, a search and a lead page
while visitors keep submitting, a CSV export of every lead, and intake on that database
against intake on an empty one, on SQLite and on PostgreSQL, in one run.

Per engine: an empty database gets a short closed-loop intake run (wrk, as bench/intake.py
runs it); then a second database is migrated by `leads migrate`, filled with 100,000 leads
(bench/dataset.py) and served by `leads serve`. A staff account signs in (its session
cookie reads the pages) and an API token reads the API. With intake running open loop at
50 req/s throughout (bench/loadgen.py), 10 readers in a process of their own read each kind
of page for a phase: each reader sends one request, waits for the whole answer, pauses
``--think`` seconds (a person reading; 0 makes them hammer), and sends the next. Latency
counts from send to the last byte. Then the CSV export of the whole list is read once (the
server's RSS sampled every 50 ms), and intake is measured closed loop on the full database.

    python bench/staff_reads.py [--quick] [--engines sqlite,postgresql] [--leads 100000]

Use ``bash bench/run --staff-reads``. Results: bench/results/<time>-staff-reads.json and a
markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import connections
import dataset
import intake
import loadgen
import targets

READERS = 10
INTAKE_RATE = 50.0
PASSWORD = "bench-password-0123456789"  # noqa: S105 - a throwaway account
STAFF_EMAIL = "bench@clinic.example"
FIRST_OPEN = 10_000  # visitor numbers of the open-loop intake during the reads
TARGET_MS = {"api_search": 50.0}  # every other read: 20 ms
EXPORT_RATE, EXPORT_RSS_MB, INTAKE_KEPT = 20_000.0, 20.0, 0.90


def kinds(data: dict[str, Any]) -> dict[str, list[str]]:
    """Each kind of read: the paths its readers take turns on."""
    leads = data["lead_ids"]
    surnames = [name.lower() for name in dataset.LAST]
    return {
        "staff_page": ["/staff"],  # the default view: waiting leads
        "staff_page_all": ["/staff?view=all"],
        "api_list": ["/api/staff/leads"],
        "api_filtered": [
            f"/api/staff/leads?status={status}&form={form}"
            for status in ("new", "booked", "unreachable")
            for form in dataset.FORMS
        ],
        "api_search": [
            *(f"/api/staff/leads?q={quote(email)}" for email in data["emails"][:30]),
            *(f"/api/staff/leads?q={phone}" for phone in data["phones"][:30]),
            *(f"/api/staff/leads?q={quote(name)}" for name in surnames),
        ],
        "lead_page": [f"/staff/leads/{lead}" for lead in leads],
    }


# -- the readers (a process of their own, so their client work does not delay the intake's)


async def _get(host: str, port: int, path: str, headers: str) -> tuple[int, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}Connection: close\r\n\r\n"
            .encode()
        )  # fmt: skip
        answer = await reader.read()  # to the end: the server closes after the answer
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, time.monotonic() - started


async def _phase(
    host: str, port: int, paths: list[str], auth: dict[str, str], seconds: float, think: float
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    rng = random.Random(len(paths))

    async def one_reader() -> None:
        while time.monotonic() < deadline:
            path = rng.choice(paths)
            headers = auth["api"] if path.startswith("/api/") else auth["page"]
            try:
                status, took = await _get(host, port, path, headers)
            except OSError:
                status, took = 0, 0.0
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200:
                latencies.append(took)
            if think:
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))

    await asyncio.gather(*(one_reader() for _ in range(READERS)))
    return {
        "reads": len(latencies),
        "reads_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": intake.ms(intake.percentile(latencies, 50)),
        "p99_ms": intake.ms(intake.percentile(latencies, 99)),
        "max_ms": intake.ms(max(latencies, default=None)),
        "statuses": statuses,
    }


def readers_process(config: dict[str, Any], out: Any) -> None:
    """Each kind's phase in turn, after one with no readers: the intake's own CPU per
    second, so that a phase's server CPU less the intake's gives the CPU of its reads."""

    async def run() -> dict[str, Any]:
        pid, seconds = config["pid"], config["seconds"]
        before, started = connections.cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        intake_cpu = (connections.cpu_seconds(pid) - before) / (time.monotonic() - started)
        results: dict[str, Any] = {"intake_only": {"server_cpu_per_s": round(intake_cpu, 3)}}
        for kind, paths in config["kinds"].items():
            before, started = connections.cpu_seconds(pid), time.monotonic()
            one = await _phase(
                targets.HOST, config["port"], paths, config["auth"], seconds, config["think"]
            )
            spent = (
                connections.cpu_seconds(pid) - before - intake_cpu * (time.monotonic() - started)
            )
            one["server_cpu_ms_per_read"] = round(1000 * spent / max(1, one["reads"]), 2)
            results[kind] = one
        return results

    out.put(asyncio.run(run()))


# -- the run on one engine


async def intake_until(server: targets.Server, stop: asyncio.Event, tag: str) -> dict[str, Any]:
    """Open-loop intake at INTAKE_RATE in 5 s chunks until ``stop``; their latencies."""
    latencies: list[float] = []
    errors = sent = 0
    first = FIRST_OPEN
    while not stop.is_set():
        run = await loadgen.open_loop(
            targets.HOST, server.port, rate=INTAKE_RATE, duration=5, first=first, tag=tag,
            max_idle=intake.MAX_IDLE,
        )  # fmt: skip
        first += len(run.samples)
        sent += len(run.samples)
        errors += run.errors
        latencies += [s.done - s.due for s in run.ok]
    return {
        "rate": INTAKE_RATE,
        "requests": sent,
        "errors": errors,
        "p50_ms": intake.ms(intake.percentile(latencies, 50)),
        "p99_ms": intake.ms(intake.percentile(latencies, 99)),
    }


def run_leads(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "leads", *args], env=env, input=stdin, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"leads {' '.join(args)} failed: {done.stderr}")
    return done.stdout


async def sign_in(port: int) -> str:
    """The staff session's Cookie header line, signed in through the login page."""
    import httpx

    base = f"http://{targets.HOST}:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        page = await client.get("/staff/login")
        found = re.search(r'name="login_token" value="([^"]*)"', page.text)
        if found is None:
            raise RuntimeError("the sign-in page has no login_token")
        answer = await client.post(
            "/staff/login",
            data={"login_token": found.group(1), "email": STAFF_EMAIL, "password": PASSWORD},
            headers={"Origin": base},
        )
        if answer.status_code != 303:
            raise RuntimeError(f"signing in answered {answer.status_code}: {answer.text[:300]}")
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return f"Cookie: {cookies}\r\n"


async def export_all(server: targets.Server, token: str) -> dict[str, Any]:
    """GET /api/staff/leads.csv read to the end, rows counted, the server's RSS sampled."""
    before = targets.rss_bytes(server.pid)
    cpu_before = connections.cpu_seconds(server.pid)
    stop = asyncio.Event()
    sampler = asyncio.create_task(targets.sample_peak_rss(server.pid, stop, every=0.05))
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(targets.HOST, server.port)
    writer.write(
        f"GET /api/staff/leads.csv HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    # Every field is quoted, so every CSV row ends in '"\r\n' (chunk-size lines do not).
    ends = size = 0
    tail = b""
    while chunk := await reader.read(1 << 16):
        ends += (tail + chunk).count(b'"\r\n')
        tail = chunk[-2:]
        size += len(chunk)
    took = time.monotonic() - started
    cpu = connections.cpu_seconds(server.pid) - cpu_before  # the intake's 50 req/s included
    writer.close()
    stop.set()
    peak = await sampler
    return {
        "status": int(head.split(b" ", 2)[1]),
        "bytes": size,
        "seconds": round(took, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(peak / 2**20, 1),
        "rss_growth_mb": round((peak - before) / 2**20, 1),
        "rows": ends - 1,  # the header
        "server_cpu_s": round(cpu, 2),
        "rows_per_cpu_s": round((ends - 1) / cpu) if cpu else None,
    }


async def measure_engine(
    engine: str, url: str, empty_url: str, workdir: Path, smtp_port: int, args: argparse.Namespace
) -> dict[str, Any]:
    forms = workdir / "forms.toml"
    forms.write_text(dataset.FORMS_TOML)
    # Kept for 4 years: the data set spans 3, and the default retention (2 years; spam 30
    # days) would purge a third of it at the server's first start, during the reads.
    extra = {
        "LEADS_FORMS_FILE": str(forms),
        "LEADS_RETENTION_DAYS": "1460",
        "LEADS_SPAM_RETENTION_DAYS": "1460",
    }
    result: dict[str, Any] = {}

    # Intake on an empty database first.
    server = targets.leads_server(workdir, empty_url, smtp_port, extra)
    try:
        await asyncio.sleep(1.0)
        result["intake_empty"] = _short(
            await intake.closed_loop(server, args.wrk, f"{engine[:2]}e")
        )
    finally:
        server.stop()

    env = {
        **os.environ,
        "LEADS_DATABASE_URL": url,
        "LEADS_SECRET_KEY": "bench-secret-key-not-for-production-0123456789",
        **extra,
    }
    run_leads(["migrate"], env)
    started = time.monotonic()
    async_url = url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )
    data = await dataset.load(async_url, count=args.leads, spam=args.leads // 100)
    result["load_seconds"] = round(time.monotonic() - started, 1)
    result["rows"] = data.rows
    run_leads(["user", "add", STAFF_EMAIL, "--role", "admin"], env, stdin=PASSWORD + "\n")
    token = run_leads(["token", "create", "--name", "bench"], env).strip().splitlines()[-1]

    server = targets.leads_server(workdir, url, smtp_port, extra)
    try:
        await asyncio.sleep(1.0)
        result["rss_idle_mb"] = round(targets.rss_bytes(server.pid) / 2**20, 1)
        cookie = await sign_in(server.port)
        config = {
            "pid": server.pid,
            "port": server.port,
            "auth": {"page": cookie, "api": f"Authorization: Bearer {token}\r\n"},
            "kinds": kinds(vars(data)),
            "seconds": args.phase,
            "think": args.think,
        }
        stop = asyncio.Event()
        visitors = asyncio.create_task(intake_until(server, stop, f"{engine[:2]}r"))
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        readers = context.Process(target=readers_process, args=(config, out))
        readers.start()
        result["reads"] = await asyncio.to_thread(out.get)
        readers.join()
        result["export"] = await export_all(server, token)
        stop.set()
        result["intake_during_reads"] = await visitors
        result["intake_full"] = _short(await intake.closed_loop(server, args.wrk, f"{engine[:2]}f"))
        if server.process.poll() is not None:
            raise RuntimeError(f"leads serve exited during the run; see {server.log}")
    finally:
        server.stop()
    export = result["export"]
    export["rows_per_s"] = round(export["rows"] / export["seconds"]) if export["seconds"] else None
    result["intake_kept"] = round(result["intake_full"]["rps"] / result["intake_empty"]["rps"], 3)
    return result


def _short(closed: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in closed.items() if k != "wrk_output"}


# -- the report


def table(results: dict[str, Any]) -> str:
    engines = list(results["engines"])
    m = results["machine"]
    lines = [
        f"Commit {m['commit']}, {results['date']}, {m['nproc']} CPUs ({m['cpu']}), "
        f"{results['options']['leads']} leads, {READERS} readers (think "
        f"{results['options']['think']} s, {results['options']['phase']} s per kind), intake "
        f"{INTAKE_RATE:g} req/s open loop throughout. One run.",
        "",
        "| Measure | " + " | ".join(engines) + " |",
        "| --- |" + " --- |" * len(engines),
    ]

    def row(label: str, cell: Any) -> None:
        lines.append(
            f"| {label} | " + " | ".join(cell(results["engines"][e]) for e in engines) + " |"
        )

    for kind in kinds({"lead_ids": [], "emails": [], "phones": []}):
        limit = TARGET_MS.get(kind, 20.0)

        def read(r: dict[str, Any], kind: str = kind, limit: float = limit) -> str:
            one = r["reads"][kind]
            verdict = "pass" if one["p99_ms"] is not None and one["p99_ms"] <= limit else "MISS"
            bad = sum(v for k, v in one["statuses"].items() if k != "200")
            return (
                f"{one['p50_ms']} / {one['p99_ms']} ({verdict}); "
                f"{one['server_cpu_ms_per_read']}; {one['reads_per_s']}"
                + (f", {bad} not 200" if bad else "")
            )

        row(f"{kind}: p50 / p99 ms (p99 <= {limit:g}); CPU ms/read; reads/s", read)
    row(
        "server CPU s per s, intake alone at 50 req/s",
        lambda r: f"{r['reads']['intake_only']['server_cpu_per_s']}",
    )
    row(
        f"CSV export: rows/s (>= {EXPORT_RATE:g}), rows",
        lambda r: (
            f"{r['export']['rows_per_s']} ({_verdict(r['export']['rows_per_s'] >= EXPORT_RATE)}), "
            f"{r['export']['rows']}"
        ),
    )
    row(
        "  rows per second of server CPU (the intake's included)",
        lambda r: f"{r['export']['rows_per_cpu_s']}",
    )
    row(
        f"  server RSS growth MB (<= {EXPORT_RSS_MB:g})",
        lambda r: (
            f"{r['export']['rss_growth_mb']} "
            f"({_verdict(r['export']['rss_growth_mb'] <= EXPORT_RSS_MB)})"
        ),
    )
    row(
        "intake during the reads: p50 / p99 ms, errors",
        lambda r: (
            f"{r['intake_during_reads']['p50_ms']} / {r['intake_during_reads']['p99_ms']}, "
            f"{r['intake_during_reads']['errors']}"
        ),
    )
    row("intake req/s, empty database", lambda r: f"{r['intake_empty']['rps']}")
    row(
        f"intake req/s, full database (ratio >= {INTAKE_KEPT:g})",
        lambda r: (
            f"{r['intake_full']['rps']} "
            f"({r['intake_kept']:g}x, {_verdict(r['intake_kept'] >= INTAKE_KEPT)})"
        ),
    )
    row("bulk load, s", lambda r: f"{r['load_seconds']}")
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


async def main() -> int:
    parser = argparse.ArgumentParser(description="staff reads at 100,000 leads")
    parser.add_argument("--quick", action="store_true", help="3 s phases and wrk runs")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--phase", type=float, default=None, help="seconds per kind of read")
    parser.add_argument("--wrk", type=int, default=None, help="seconds per closed-loop run")
    parser.add_argument("--think", type=float, default=0.5, help="a reader's pause, seconds")
    args = parser.parse_args()
    args.phase = args.phase or (3.0 if args.quick else 8.0)
    args.wrk = args.wrk or (3 if args.quick else 8)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(engines) - {"sqlite", "postgresql"}:
        parser.error(f"unknown engines: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bash bench/run installs it)")
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["bash bench/run --staff-reads", *sys.argv[1:]]),
        "options": {k: v for k, v in vars(args).items()},
        "machine": intake.machine(),
        "engines": {},
    }
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leads-staff-")))
        smtp_port, _inbox = stack.enter_context(targets.smtp_sink(workdir))
        pg = stack.enter_context(targets.postgres_cluster()) if "postgresql" in engines else None
        for engine in engines:
            if engine == "sqlite":
                url, empty = f"sqlite:///{workdir}/full.db", f"sqlite:///{workdir}/empty.db"
            else:
                assert pg is not None
                url = targets.create_database(pg, "full")
                empty = targets.create_database(pg, "empty")
            print(f"bench: {engine}: loading and measuring", file=sys.stderr)
            results["engines"][engine] = await measure_engine(
                engine, url, empty, workdir, smtp_port, args
            )
    out = targets.ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"{stamp}-staff-reads.json"
    path.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"\nraw results: {path.relative_to(targets.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
