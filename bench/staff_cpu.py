"""The server's CPU per staff read: what one list page, filtered list, search, lead page or
CSV download costs a real `leads serve`, read one after another by one signed-in member of
staff, with nothing else running on the server.

    .venv/bin/python bench/staff_cpu.py                     # this tree
    .venv/bin/python bench/staff_cpu.py --against 338833d   # and a git revision, interleaved
    .venv/bin/python bench/staff_cpu.py --reads 40 --repeat 5 --leads 2000

A SQLite database is migrated by this tree's `leads migrate` and filled by bench/dataset.py
(``--leads`` listed leads and 1% spam: the 100,000-lead data set's spread at a smaller size);
each tree is served from its own copy of that file by a real `leads serve` subprocess (the
code at ``--against`` from `git archive`, on PYTHONPATH), with LEADS_DISPATCHER=worker and
no worker, so that the server's CPU is its reads' alone (no dispatcher polling). A real
server, not the app in this process: its CPU then includes uvicorn, the middleware and the
HTTP parsing a reader pays for, and this process's client work is not counted. Each server
is signed in through /staff/login, its session cookie reads the pages and the API (as the
dashboard does), on one keep-alive connection. After one warm-up round, each kind of read
is made ``--reads`` times in a row per tree, the trees taking turns kind by kind, the whole
``--repeat`` times; the server's utime+stime (from /proc) and the wall time over each run of
reads, divided by the reads. Prints, per kind and tree, the medians over repeats and the
ratio of this tree to ``--against``.

    .venv/bin/python bench/staff_cpu.py --profile /staff --reads 300

instead records where this tree's server spends its CPU on one kind of read (py-spy, at
500 samples a second, over ``--reads`` reads after the warm-up) and prints the functions
with the most samples, inclusive and on their own. Not a test: the machine is shared, so
figures move with its load; /proc counts in 10 ms ticks, so keep ``--reads`` x the cost
well above that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import dataset
import httpx
import staff_reads
import targets

SECRET = "bench-secret-key-not-for-production-0123456789"  # noqa: S105 - a throwaway key


def kinds(data: dataset.Dataset) -> dict[str, list[str]]:
    """Each kind of read: the paths its reads take turns on."""
    surnames = [name.lower() for name in dataset.LAST]
    return {
        "/staff": ["/staff"],
        "/staff?view=all": ["/staff?view=all"],
        "/api/staff/leads": ["/api/staff/leads"],
        "api status+form": [
            f"/api/staff/leads?status={status}&form={form}"
            for status in ("new", "booked", "unreachable")
            for form in dataset.FORMS
        ],
        "api ?q= search": [
            *(f"/api/staff/leads?q={quote(email)}" for email in data.emails[:10]),
            *(f"/api/staff/leads?q={name}" for name in surnames[:10]),
        ],
        "/staff?q= search": [f"/staff?view=all&q={name}" for name in surnames[:10]],
        "/staff/leads/<id>": [f"/staff/leads/{lead}" for lead in data.lead_ids],
        "CSV download": ["/api/staff/leads.csv"],
    }


def tree_at(revision: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision, "leads", "alembic"],
        cwd=targets.ROOT, check=True, capture_output=True,
    )  # fmt: skip
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "leads" / "_migrations").symlink_to(into / "alembic")
    return into


def leads_command(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "leads", *args], env=env, input=stdin, capture_output=True,
        text=True, timeout=600, cwd=targets.ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"leads {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def settings_env(url: str, forms: Path) -> dict[str, str]:
    return {
        "LEADS_DATABASE_URL": url,
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_FORMS_FILE": str(forms),
        "LEADS_RETENTION_DAYS": "1460",  # the data set spans three years
        "LEADS_SPAM_RETENTION_DAYS": "1460",
        "LEADS_DISPATCHER": "worker",  # and none runs: the server only answers reads
    }


def fill(workdir: Path, count: int) -> tuple[Path, dataset.Dataset]:
    path, forms = workdir / "base.db", workdir / "forms.toml"
    forms.write_text(dataset.FORMS_TOML)
    env = {**os.environ, **settings_env(f"sqlite:///{path}", forms)}
    leads_command(["migrate"], env)
    data = asyncio.run(dataset.load(f"sqlite+aiosqlite:///{path}", count=count, spam=count // 100))
    user = ["user", "add", staff_reads.STAFF_EMAIL, "--role", "admin"]
    leads_command(user, env, stdin=staff_reads.PASSWORD + "\n")
    return path, data


@contextlib.contextmanager
def served(tree: Path, base: Path, workdir: Path, smtp_port: int) -> Iterator[targets.Server]:
    """``leads serve`` of ``tree`` on a copy of ``base``."""
    workdir.mkdir()
    db = workdir / "leads.db"
    shutil.copyfile(base, db)
    env = {
        **settings_env(f"sqlite:///{db}", base.parent / "forms.toml"),
        "PYTHONPATH": str(tree),
    }
    server = targets.leads_server(workdir, f"sqlite:///{db}", smtp_port, env)
    try:
        yield server
    finally:
        server.stop()


def read_run(client: httpx.Client, paths: list[str], reads: int, pid: int) -> tuple[float, float]:
    """``reads`` GETs in a row, taking turns on ``paths``: server CPU ms and wall ms per read."""
    cpu, began = targets.cpu_seconds(pid), time.perf_counter()
    for i in range(reads):
        answer = client.get(paths[i % len(paths)])
        if answer.status_code != 200:
            raise RuntimeError(f"GET {answer.url} answered {answer.status_code}")
    wall = time.perf_counter() - began
    return 1000 * (targets.cpu_seconds(pid) - cpu) / reads, 1000 * wall / reads


def profile(pid: int, client: httpx.Client, paths: list[str], reads: int, workdir: Path) -> None:
    """py-spy on the server over ``reads`` reads: the 25 functions seen most, inclusive (on
    the stack) and on their own (at its top), as shares of the samples."""
    out = workdir / "profile.txt"
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate",
         "500", "--format", "raw", "--function", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # py-spy attaches
    cpu, wall = read_run(client, paths, reads, pid)
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # "function (path:line)" to "function (module.py)"
        frames = [f.split(" (")[0] + " (" + f.rsplit("/", 1)[-1].split(":")[0] + ")"
                  for f in stack.split(";")]  # fmt: skip
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(
        f"{reads} reads of {paths[0]}...: {cpu:.1f} CPU ms, {wall:.1f} wall ms per read; "
        f"{total} samples of threads not idle"
    )
    for title, counter in (("inclusive", inclusive), ("own", own)):
        print(f"-- {title}")
        for frame, n in counter.most_common(int(os.environ.get("TOP", "25"))):
            print(f"{100 * n / max(1, total):5.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git revision to measure in the same run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reads", type=int, default=40, help="reads of each kind per run")
    parser.add_argument("--csv-reads", type=int, default=5, help="downloads per run")
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--only", help="comma-separated kinds to measure (default: all)")
    parser.add_argument("--profile", metavar="KIND", help="py-spy this tree on one kind")
    args = parser.parse_args()
    if args.profile:
        args.against, args.only, args.repeat = None, args.profile, 0
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="leads-cpu-")))
        print(f"bench: filling a database with {args.leads:,} leads", file=sys.stderr)
        base, data = fill(workdir, args.leads)
        smtp_port, _inbox = stack.enter_context(targets.smtp_sink(workdir))
        trees = {"this tree": targets.ROOT}
        if args.against:
            trees[args.against] = tree_at(args.against, Path(workdir / "against"))
        servers, clients = {}, {}
        for n, (name, tree) in enumerate(trees.items()):
            server = stack.enter_context(served(tree, base, workdir / f"server{n}", smtp_port))
            cookie = asyncio.run(staff_reads.sign_in(server.port))
            client = httpx.Client(
                base_url=f"http://{targets.HOST}:{server.port}",
                headers={"Cookie": cookie.removeprefix("Cookie: ").strip()},
                timeout=120,
            )
            stack.callback(client.close)
            servers[name], clients[name] = server, client
        chosen = kinds(data)
        if args.only:
            chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
        figures: dict[str, dict[str, list[tuple[float, float]]]] = {
            name: {kind: [] for kind in chosen} for name in trees
        }
        for name in trees:  # warm-up: first requests compile templates, fill caches
            for paths in chosen.values():
                read_run(clients[name], paths, len(paths), servers[name].pid)
        for round_ in range(args.repeat):  # interleaved: load moves every tree alike
            print(f"bench: round {round_ + 1} of {args.repeat}", file=sys.stderr)
            for kind, paths in chosen.items():
                reads = args.csv_reads if kind == "CSV download" else args.reads
                for name in trees:
                    run = read_run(clients[name], paths, reads, servers[name].pid)
                    figures[name][kind].append(run)
        if args.profile:
            server, client = servers["this tree"], clients["this tree"]
            profile(server.pid, client, chosen[args.profile], args.reads, workdir)
            return 0
    report(figures, args, data)
    return 0


def report(
    figures: dict[str, dict[str, list[tuple[float, float]]]],
    args: argparse.Namespace,
    data: dataset.Dataset,
) -> None:
    names = list(figures)
    load = os.getloadavg()[0]
    print(
        f"{data.leads:,} leads (+{data.spam:,} spam), SQLite, {args.reads} reads per kind per "
        f"run ({args.csv_reads} downloads), median of {args.repeat} runs; load average "
        f"{load:.1f} at the end. Server CPU ms per read (utime+stime), wall ms per read."
    )
    head = "| Read | " + " | ".join(f"{n}: CPU ms / wall ms" for n in names)
    if len(names) == 2:
        head += " | CPU ratio"
    print(head + " |")
    print("| --- |" + " --- |" * (len(names) + (len(names) == 2)))
    for kind in figures[names[0]]:
        cells, cpus = [], []
        for name in names:
            runs = figures[name][kind]
            cpu = statistics.median(c for c, _ in runs)
            wall = statistics.median(w for _, w in runs)
            cells.append(f"{cpu:.1f} / {wall:.1f}")
            cpus.append(cpu)
        if len(names) == 2:
            cells.append(f"{cpus[0] / cpus[1]:.2f}x" if cpus[1] else "-")
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
