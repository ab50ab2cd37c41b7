"""The flood-resilience benchmark: while one client floods ``POST /api/leads``
with submissions that are refused (rate-limited) or flagged (honeypot) as fast as it can,
do real submissions from another client still get 201, quickly? What does a rejected
submission cost the server, and what reaches the inbox and the database?

Per repeat, on a fresh ``leads serve`` (SQLite, the SMTP sink of bench/sink.py, the default
``LEADS_RATE_LIMIT`` and ``LEADS_TARPIT_SECONDS``, and ``LEADS_TRUSTED_PROXIES=127.0.0.1/32``,
so that each simulated client has its own address in ``X-Forwarded-For``):

1. baseline: a legit open-loop stream (20 req/s, every request a new visitor from its own
   address in 100.64.0.0/10) alone;
2. flood A (rate-limited): the same legit stream while wrk (bench/flood.lua, 1 thread,
   32 connections, or ``--connections N``) posts valid submissions from ONE address
   (192.0.2.1) as fast as it can;
3. flood B (honeypot): the same, wrk's submissions having the hidden ``website`` field
   filled in, each from its own address (10.x.y.z) so none is rate-limited;
4. CPU per request: the server's utime+stime (/proc/<pid>/stat) over N submissions of one
   kind alone (accepted, rate-limited, honeypot) sent open-loop at a fixed rate, less the
   idle server's own CPU over the same time; taken when the last answer is in, and again
   once the server is quiet (emails delivered).

Each phase records emails received by the sink and the growth of every table and of the
database (``page_count * page_size``, read-only connection) and its files.

    python bench/flood.py [--quick] [--repeat 3] [--profile] [--connections 32]

Use ``bash bench/run --flood [...]``, which installs what this needs first. Results: a JSON
file in bench/results/ and a markdown summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import intake
import loadgen
import targets
from report import flatten

LEGIT_RATE = 20.0
CPU_RATE = 100.0  # submissions per second in the CPU-cost runs (well below capacity)
FLOOD_CONNECTIONS = 32
FLOOD_THREADS = 1  # wrk shares the two cores with the server: one thread is plenty
FLOOD_ADDRESS = "192.0.2.1"  # flood A's one client
LIMITED_ADDRESS = "192.0.2.2"  # the CPU run's rate-limited client (exhausted first)
ALLOWED_PER_MINUTE = 5  # of LEADS_RATE_LIMIT's default, 5/minute;30/day
RATE_LIMIT = "5/minute;30/day"
MAX_IDLE = 4.0  # seconds; uvicorn closes a keep-alive connection idle for 5 s
SETTLE_WAIT = 15.0  # longest wait for the server to go quiet after a CPU run
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Visitor numbers (email, phone; legit addresses) per phase, disjoint within a server.
FIRST = {
    "baseline": 0,
    "warm": 5_000,
    "limited_legit": 10_000,
    "honeypot_legit": 20_000,
    "cpu_accepted": 30_000,
    "limited_flood": 1_000_000,
    "honeypot_flood": 2_000_000,
    "cpu_limited": 3_000_000,
    "cpu_honeypot": 4_000_000,
}
HONEYPOT_URL = "http://cheap-pills.example"


# -- what is sent ---------------------------------------------------------------------------


def legit_address(i: int) -> bytes:
    """Visitor i's own address in 100.64.0.0/10, so no legit visitor is ever rate-limited."""
    return b"X-Forwarded-For: 100.%d.%d.%d\r\n" % (64 + (i >> 16) % 64, (i >> 8) % 256, i % 256)


def honeypot_address(i: int) -> bytes:
    """As bench/flood.lua's honeypot mode: 10.x.y.z from i."""
    return b"X-Forwarded-For: 10.%d.%d.%d\r\n" % ((i >> 16) % 256, (i >> 8) % 256, i % 256)


def limited_address(_: int) -> bytes:
    return f"X-Forwarded-For: {LIMITED_ADDRESS}\r\n".encode()


def honeypot_body(i: int, tag: str) -> bytes:
    body = json.loads(loadgen.submission(i, tag))
    body["website"] = HONEYPOT_URL
    return json.dumps(body, separators=(",", ":")).encode()


# -- what is measured -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def db_stats(path: Path) -> dict[str, int]:
    """Rows per table, the logical size (WAL included) and the files' size on disk."""
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        tables = [
            row[0]
            for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        count = 'SELECT count(*) FROM "{}"'  # names from sqlite_master, not from input
        stats = {f"table.{t}": db.execute(count.format(t)).fetchone()[0] for t in tables}
        stats["rows.leads"] = stats["table.leads"]
        stats["rows.enquiries"] = stats["table.enquiries"]
        stats["rows.outbox"] = stats["table.outbox"]
        stats["rows.leads_spam"] = db.execute("SELECT count(*) FROM leads WHERE spam").fetchone()[0]
        for status, n in db.execute("SELECT status, count(*) FROM outbox GROUP BY status"):
            stats[f"rows.outbox_{status}"] = n
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        stats["bytes"] = pages * db.execute("PRAGMA page_size").fetchone()[0]
    stats["file_bytes"] = sum(
        p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )
    return stats


def flagged_ids(path: Path) -> set[str]:
    """Ids (hex, no dashes) of the leads stored flagged as spam."""
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute("SELECT id FROM leads WHERE spam").fetchall()
    return {str(row[0]).replace("-", "").lower() for row in rows}


def mail_check(db: Path, inbox: Path, mail_before: int) -> dict[str, int]:
    """The emails that arrived since ``mail_before``: how many, how many announce a lead
    stored as spam, and how many repeat a lead already announced (a re-delivery)."""
    ids = inbox_ids(inbox)
    earlier, new = set(ids[:mail_before]), ids[mail_before:]
    spam = flagged_ids(db)
    seen: set[str] = set()
    repeats = 0
    for lead in new:
        repeats += lead in earlier or lead in seen
        seen.add(lead)
    return {
        "emails": len(new),
        "spam_emails": sum(1 for lead in new if lead.replace("-", "") in spam),
        "repeat_emails": repeats,
    }


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted({*before, *after})}


def inbox_ids(record: Path) -> list[str]:
    return [line.partition(" ")[2] for line in record.read_text().splitlines()]


def legit_summary(run: loadgen.OpenLoopRun) -> dict[str, Any]:
    latencies = [s.done - s.due for s in run.ok]
    statuses: dict[str, int] = {}
    for s in run.samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    return {
        "requests": len(run.samples),
        "created": sum(1 for s in run.samples if s.status == 201),
        "errors": sum(1 for s in run.samples if s.status != 201),
        "statuses": statuses,
        "p50_ms": intake.ms(intake.percentile(latencies, 50)),
        "p99_ms": intake.ms(intake.percentile(latencies, 99)),
        "max_ms": intake.ms(max(latencies, default=None)),
    }


async def legit_stream(server: targets.Server, duration: int, first: int, tag: str) -> Any:
    return await loadgen.open_loop(
        targets.HOST,
        server.port,
        rate=LEGIT_RATE,
        duration=duration,
        first=first,
        tag=tag,
        headers=legit_address,
        max_idle=MAX_IDLE,
    )


async def wrk_flood(
    server: targets.Server,
    mode: str,
    duration: int,
    first: int,
    tag: str,
    connections: int = FLOOD_CONNECTIONS,
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *["wrk", f"-t{FLOOD_THREADS}", f"-c{connections}", f"-d{duration}s"],
        *["--timeout", "10s", "-s", str(targets.BENCH / "flood.lua")],
        *[f"http://{targets.HOST}:{server.port}", "--", str(first), str(FLOOD_THREADS)],
        *[tag, mode, FLOOD_ADDRESS],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), duration + 60)
    text = output.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.startswith("wrk-json ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed:\n{text}")
    raw = json.loads(lines[-1].removeprefix("wrk-json "))
    statuses = {k: raw["statuses"][k] for k in sorted(raw["statuses"])}
    answered = sum(statuses.values())
    return {
        "connections": connections,
        "requests": raw["requests"],
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "statuses": statuses,
        "share_429": round(statuses.get("429", 0) / answered, 4) if answered else None,
        "created": statuses.get("201", 0),
        "socket_errors": sum(raw[k] for k in ("connect", "read", "write", "timeout")),
    }


# -- the phases -----------------------------------------------------------------------------


async def baseline(server: targets.Server, inbox: Path, db: Path, d: int, tag: str) -> Any:
    before, mail_before = db_stats(db), len(inbox_ids(inbox))
    run = await legit_stream(server, d, FIRST["baseline"], tag)
    result = legit_summary(run)
    sent = intake.lead_ids(run)
    arrivals = await intake.wait_for_mail(inbox, sent)
    result["mail_missing"] = sum(1 for lead in sent if lead not in arrivals)
    result.update(mail_check(db, inbox, mail_before))
    result["db"] = growth(before, db_stats(db))
    result["bytes_per_lead"] = round(result["db"]["bytes"] / max(1, result["created"]))
    return result


async def flood(
    server: targets.Server, inbox: Path, db: Path, mode: str, d: int, tag: str, connections: int
) -> dict[str, Any]:
    """The legit stream and a wrk flood (``limited`` or ``honeypot``) side by side."""
    before, mail_before = db_stats(db), len(inbox_ids(inbox))
    cpu_before, started = cpu_seconds(server.pid), time.monotonic()
    first = FIRST[f"{mode}_flood"]
    flooding = asyncio.create_task(wrk_flood(server, mode, d, first, tag + "f", connections))
    run = await legit_stream(server, d, FIRST[f"{mode}_legit"], tag + "l")
    wrk = await flooding
    cpu = cpu_seconds(server.pid) - cpu_before
    elapsed = time.monotonic() - started
    sent = intake.lead_ids(run)
    arrivals = await intake.wait_for_mail(inbox, sent)
    await asyncio.sleep(2.0)  # any email of the flood's would be out by now too
    new_mail = inbox_ids(inbox)[mail_before:]
    mail = mail_check(db, inbox, mail_before)
    legit = legit_summary(run)
    legit["mail_missing"] = sum(1 for lead in sent if lead not in arrivals)
    table = growth(before, db_stats(db))
    flood_mail = sum(1 for lead in new_mail if lead not in sent)
    result: dict[str, Any] = {
        "legit": legit,
        "flood": wrk,
        "server_cpu_share": round(cpu / elapsed, 3),
        "emails": len(new_mail),
        "flood_emails": flood_mail,
        "repeat_emails": mail["repeat_emails"],
        "spam_emails": mail["spam_emails"],
        "db": table,
    }
    # Leads rows beyond the 201s counted: wrk stops with up to one request in flight per
    # connection, which the server may still store (its answer is never read).
    unanswered = max(0, wrk["requests"] - sum(wrk["statuses"].values()))
    result["unanswered_flood_rows"] = min(
        connections, table.get("rows.leads", 0) - legit["created"] - wrk["created"]
    )
    result["extra_rows"] = max(
        0, table.get("rows.leads", 0) - legit["created"] - wrk["created"] - connections
    )
    result["flood"]["unanswered"] = unanswered
    if mode == "limited":
        # Only the flood client's first ALLOWED_PER_MINUTE are accepted (and announced).
        result["flood_emails_beyond_allowed"] = max(0, flood_mail - ALLOWED_PER_MINUTE)
        flagged = max(1, wrk["created"])
        result["flagged_leads_per_submission"] = round(table.get("rows.leads_spam", 0) / flagged, 3)
    return result


async def settle(pid: int, idle_rate: float) -> None:
    """Wait (at most SETTLE_WAIT s) until the server uses no more than idle CPU for 1 s."""
    deadline = time.monotonic() + SETTLE_WAIT
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before <= idle_rate + 1.5 / CLK_TCK:
            return


async def cpu_cost(
    server: targets.Server, inbox: Path, db: Path, kind: str, d: int, tag: str
) -> dict[str, Any]:
    """Server CPU over N submissions of one kind alone, at CPU_RATE, less idle CPU."""
    pid = server.pid
    headers, body = {
        "accepted": (legit_address, loadgen.submission),
        "limited": (limited_address, loadgen.submission),
        "honeypot": (honeypot_address, honeypot_body),
    }[kind]
    first = FIRST[f"cpu_{kind}"]
    if kind == "limited":  # use up the address's allowance first, outside the measurement
        warm = await loadgen.open_loop(
            targets.HOST, server.port, rate=25.0, duration=0.2, first=first, tag=tag,
            headers=headers,
        )  # fmt: skip
        assert [s.status for s in warm.samples] == [201] * 5, [s.status for s in warm.samples]
        first += 100
    await settle(pid, 0.0)
    at, c0 = time.monotonic(), cpu_seconds(pid)
    await asyncio.sleep(2.0)
    idle_rate = (cpu_seconds(pid) - c0) / (time.monotonic() - at)
    before, mail_before = db_stats(db), len(inbox_ids(inbox))
    t0, c0 = time.monotonic(), cpu_seconds(pid)
    run = await loadgen.open_loop(
        targets.HOST, server.port, rate=CPU_RATE, duration=d, first=first, tag=tag,
        headers=headers, body=body, max_idle=MAX_IDLE,
    )  # fmt: skip
    t1, c1 = time.monotonic(), cpu_seconds(pid)
    if kind != "limited":
        await intake.wait_for_mail(inbox, intake.lead_ids(run) if kind == "accepted" else {})
    await settle(pid, idle_rate)
    t2, c2 = time.monotonic(), cpu_seconds(pid)
    n = len(run.samples)
    statuses: dict[str, int] = {}
    for s in run.samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    table = growth(before, db_stats(db))
    return {
        "requests": n,
        "statuses": statuses,
        "idle_cpu_share": round(idle_rate, 4),
        "cpu_ms_per_request": round((c1 - c0 - idle_rate * (t1 - t0)) * 1000 / n, 3),
        "cpu_ms_per_request_settled": round((c2 - c0 - idle_rate * (t2 - t0)) * 1000 / n, 3),
        **mail_check(db, inbox, mail_before),
        "db": table,
        "bytes_per_request": round(table["bytes"] / n, 1),
        "rows_per_request": round(sum(v for k, v in table.items() if k[:6] == "table.") / n, 3),
    }


async def profile(server: targets.Server, d: int, tag: str, out: Path) -> str:
    """py-spy on the server during an extra (unreported) flood A: collapsed stacks."""
    py_spy = Path(sys.executable).with_name("py-spy")
    spy = await asyncio.create_subprocess_exec(
        *[str(py_spy), "record", "--nonblocking", "-r", "200", "-d", str(d)],
        *["-f", "raw", "-o", str(out), "--pid", str(server.pid)],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    flooding = asyncio.create_task(wrk_flood(server, "limited", d, 5_000_000, tag + "f"))
    await legit_stream(server, d, 40_000, tag + "l")
    await flooding
    _, errors = await asyncio.wait_for(spy.communicate(), d + 30)
    if spy.returncode != 0:
        print(f"bench: py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
    return str(out)


async def repeat_once(
    workdir: Path, smtp_port: int, inbox: Path, args: argparse.Namespace, repeat: int
) -> dict[str, Any]:
    d, tag = args.duration, f"r{repeat}"
    db = workdir / f"flood-{repeat}.db"
    env = {"LEADS_RATE_LIMIT": RATE_LIMIT, "LEADS_TRUSTED_PROXIES": "127.0.0.1/32"}
    server = targets.leads_server(workdir, f"sqlite:///{db}", smtp_port, env)
    result: dict[str, Any] = {}
    try:
        await asyncio.sleep(1.0)
        warm = await legit_stream(server, 2, FIRST["warm"], tag + "w")  # not counted
        await intake.wait_for_mail(inbox, intake.lead_ids(warm))
        result["baseline"] = await baseline(server, inbox, db, d, tag + "b")
        wide = args.connections
        result["limited"] = await flood(server, inbox, db, "limited", d, tag + "a", wide)
        result["honeypot"] = await flood(server, inbox, db, "honeypot", d, tag + "h", wide)
        result["cpu"] = {
            kind: await cpu_cost(server, inbox, db, kind, d, f"{tag}c{kind[0]}")
            for kind in ("accepted", "limited", "honeypot")
        }
        accepted = result["cpu"]["accepted"]
        for kind in ("limited", "honeypot"):
            cpu = result["cpu"][kind]
            for key in ("cpu_ms_per_request", "cpu_ms_per_request_settled"):
                cpu[key.replace("cpu_ms_per_request", "ratio")] = round(cpu[key] / accepted[key], 3)
        base_p99 = result["baseline"]["p99_ms"]
        for mode in ("limited", "honeypot"):
            result[mode]["p99_ratio"] = round(result[mode]["legit"]["p99_ms"] / base_p99, 2)
        if server.process.poll() is not None:
            raise RuntimeError(f"leads exited during the run; see {server.log}")
        if args.profile and repeat == args.repeat - 1:
            where = args.results.with_name(f"{args.results.name}-flood-profile.txt")
            result["profile"] = await profile(server, d, tag + "p", where)
    finally:
        server.stop()
    return result


# -- the summary ----------------------------------------------------------------------------

SUMMED = ("errors", "mail_missing", "spam_emails", "extra_rows", "socket_errors")
SUMMED += ("repeat_emails", "flood_emails_beyond_allowed")


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    flats = [flatten(r) for r in runs]
    out: dict[str, float] = {}
    for key in sorted({k for f in flats for k in f}):
        values = [f[key] for f in flats if key in f]
        last = key.rsplit(".", 1)[-1]
        out[key] = round(sum(values) if last in SUMMED else statistics.median(values), 3)
    return out


LEGIT = ("baseline", "limited.legit", "honeypot.legit")
FLOOD = (None, "limited.flood", "honeypot.flood")
FLOOD2 = (None, "limited", "honeypot")
PHASE = ("baseline", "limited", "honeypot")
DB = ("baseline.db", "limited.db", "honeypot.db")
# (label, keys under each column's prefix, the three columns' prefixes; None: no value)
ROWS = [
    ("legit p50 / p99 ms (20 req/s)", "p50_ms|p99_ms", LEGIT),
    ("legit p99 / unloaded p99 (per repeat)", "p99_ratio", FLOOD2),
    ("legit 201s / requests", "created|requests", LEGIT),
    ("legit not 201 (total)", "errors", LEGIT),
    ("legit emails missing after 20 s (total)", "mail_missing", LEGIT),
    (f"flood connections (wrk -t{FLOOD_THREADS})", "connections", FLOOD),
    ("flood req/s", "rps", FLOOD),
    ("flood answers: 429 / 201", "statuses.429|statuses.201", FLOOD),
    ("flood share of 429", "share_429", FLOOD),
    ("flood p50 / p99 ms", "p50_ms|p99_ms", FLOOD),
    ("server CPU, share of one core", "server_cpu_share", FLOOD2),
    ("emails received: all / from the flood", "emails|flood_emails", PHASE),
    ("emails of leads stored as spam (total)", "spam_emails", FLOOD2),
    ("flood A emails beyond its 5 allowed (total)", "flood_emails_beyond_allowed", FLOOD2),
    ("emails repeating an earlier lead's (total)", "repeat_emails", PHASE),
    ("rows added: leads / of them spam", "rows.leads|rows.leads_spam", DB),
    ("rows added: outbox / enquiries", "rows.outbox|rows.enquiries", DB),
    ("leads rows of flood requests cut off when wrk stopped", "unanswered_flood_rows", FLOOD2),
    ("leads rows beyond those and the 201s (total)", "extra_rows", FLOOD2),
    ("database growth, kB: logical / files", "bytes|file_bytes", DB),
]

CPU_ROWS = [
    ("answers", "statuses.201|statuses.429"),
    ("CPU ms per request, when the last answer is in", "cpu_ms_per_request"),
    ("  ratio to accepted", "ratio"),
    ("CPU ms per request, once quiet (emails sent)", "cpu_ms_per_request_settled"),
    ("  ratio to accepted", "ratio_settled"),
    ("rows per request (all tables)", "rows_per_request"),
    ("database growth, bytes per request (logical)", "bytes_per_request"),
    ("emails: all (median) / of spam leads, repeats (total)", "emails|spam_emails|repeat_emails"),
    ("idle server CPU, share of one core", "idle_cpu_share"),
]


def _cell(meds: dict[str, float], keys: str, kb: bool = True) -> str:
    if not keys:
        return "-"
    parts = []
    for key in keys.split("|"):
        value = meds.get(key)
        if value is not None and "bytes" in key and kb:
            value = round(value / 1024, 1)
        parts.append("-" if value is None else f"{value:g}")
    return " / ".join(parts)


def markdown(results: dict[str, Any]) -> str:
    meds, m = results["medians"], results["machine"]
    lines = [
        f"Commit {m['commit']}"
        + (f" (+{len(m['uncommitted'])} uncommitted files in leads/)" if m["uncommitted"] else "")
        + f", {results['date']}, {m['nproc']} CPUs. Medians of {len(results['runs'])} "
        "repeat(s); counts marked (total) are summed.",
        "",
        "| Measure | unloaded | flood A: rate-limited | flood B: honeypot |",
        "| --- | --- | --- | --- |",
    ]
    for label, keys, columns in ROWS:
        cells = [
            _cell(meds, "|".join(f"{c}.{k}" for k in keys.split("|")) if c else "") for c in columns
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| CPU cost, N alone | accepted | rate-limited | honeypot |",
        "| --- | --- | --- | --- |",
    ]
    for label, keys in CPU_ROWS:
        cells = []
        for kind in ("accepted", "limited", "honeypot"):
            prefixed = "|".join(f"cpu.{kind}.{k}" for k in keys.split("|"))
            cells.append(_cell(meds, prefixed, kb=False))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", *verdicts(meds)]
    return "\n".join(lines)


def verdicts(meds: dict[str, float]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "pass" if ok else "MISS"

    out = ["| Target | Result |", "| --- | --- |"]
    for mode, name in (("limited", "A (rate-limited)"), ("honeypot", "B (honeypot)")):
        ratio, errors = meds[f"{mode}.p99_ratio"], meds[f"{mode}.legit.errors"]
        ok = ratio <= 3 and errors == 0
        out.append(
            f"| flood {name}: legit all 201, p99 <= 3x unloaded | {verdict(ok)}: "
            f"{ratio:g}x, {errors:g} not 201 |"
        )
    for kind in ("limited", "honeypot"):
        ratio = meds[f"cpu.{kind}.ratio"]
        settled = meds[f"cpu.{kind}.ratio_settled"]
        out.append(
            f"| CPU of a {kind} submission <= 0.3x an accepted one | {verdict(ratio <= 0.3)}: "
            f"{ratio:g}x ({settled:g}x counting email delivery) |"
        )
    spam = meds["limited.spam_emails"] + meds["honeypot.spam_emails"]
    spam += meds["limited.flood_emails_beyond_allowed"] + meds["cpu.honeypot.spam_emails"]
    missing = meds["limited.legit.mail_missing"] + meds["honeypot.legit.mail_missing"]
    out.append(
        f"| no spam reaches the inbox | {verdict(spam == 0)}: {spam:g} spam emails; "
        f"{missing:g} legit emails missing |"
    )
    limited_rows = meds["cpu.limited.rows_per_request"]
    ok = limited_rows == 0 and meds["limited.extra_rows"] == 0
    out.append(f"| rate-limited: no rows | {verdict(ok)}: {limited_rows:g} rows per request |")
    rows, size = meds["cpu.honeypot.rows_per_request"], meds["cpu.honeypot.bytes_per_request"]
    requests = meds["cpu.honeypot.requests"]
    out.append(
        f"| flagged: at most one small row each | {verdict(rows <= 1)}: {rows:g} rows "
        f"({meds.get('cpu.honeypot.db.rows.leads', 0) / requests:g} leads, "
        f"{meds.get('cpu.honeypot.db.rows.outbox', 0) / requests:g} outbox), "
        f"{size:g} bytes per submission |"
    )
    return out


async def main() -> int:
    parser = argparse.ArgumentParser(description="leads flood-resilience benchmark")
    parser.add_argument("--quick", action="store_true", help="3 s phases, one repeat")
    parser.add_argument("--repeat", type=int, default=None, help="repeats (default 3; quick 1)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per phase")
    parser.add_argument("--profile", action="store_true", help="py-spy the service (extra run)")
    parser.add_argument(
        "--connections",
        type=int,
        default=FLOOD_CONNECTIONS,
        help=f"the flooding client's connections (default {FLOOD_CONNECTIONS})",
    )
    args = parser.parse_args()
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.duration = args.duration or (3 if args.quick else 10)
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (bash bench/run installs it)")
    intake.check_phone_numbers()
    at_start = intake.machine()
    args.results = targets.ROOT / "bench" / "results"
    args.results.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results = args.results / f"flood-{stamp}"
    loads = []
    runs = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leads-flood-")))
        smtp_port, inbox = stack.enter_context(targets.smtp_sink(workdir))
        for repeat in range(args.repeat):
            loads.append(os.getloadavg()[0])
            result = await repeat_once(workdir, smtp_port, inbox, args, repeat)
            runs.append(result)
            flat = flatten(result)
            print(
                f"bench: repeat {repeat + 1}: p99 {flat['baseline.p99_ms']:g} ms unloaded, "
                f"x{flat['limited.p99_ratio']:g} flood A, x{flat['honeypot.p99_ratio']:g} "
                f"flood B; CPU ratio {flat['cpu.limited.ratio']:g} limited, "
                f"{flat['cpu.honeypot.ratio']:g} honeypot",
                file=sys.stderr,
            )
    results = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["bash bench/run --flood", *sys.argv[1:]]),
        "options": {k: str(v) for k, v in vars(args).items()},
        "machine": at_start,
        "load_average_at_repeat_start": loads,
        "runs": runs,
    }
    at_end = intake.machine()
    if (at_end["commit"], at_end["uncommitted"]) != (at_start["commit"], at_start["uncommitted"]):
        results["code_changed_during_run"] = {"commit": at_end["commit"]}
    results["medians"] = medians(runs)
    path = args.results.with_suffix(".json")
    path.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"\nraw results: {path.relative_to(targets.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
