"""Rate-limit storage micro-benchmark: CPU per submission counted in memory, as the day's
distinct visitors add up, with ``limits``' own async memory storage (the baseline) and with
leads' ``MemoryWindows`` (leads/abuse/windows.py), in the same run.

Each "submission" is what ``Defences.screen`` does: ``SubmissionLimiter.hit`` on three new
keys (address, email, phone) under the default ``5/minute;30/day``, one every 2 ms (so the
baseline's background sweep, started after each hit, gets the event loop as it would in a
server). Reported: process CPU ms per submission for each block of ``--block`` submissions,
and the median over repeats. Each run is a fresh process, so that one storage's leftover
background work cannot be billed to the other.

    .venv/bin/python bench/ratelimit.py [--visitors 3000] [--block 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from limits.aio.storage import MemoryStorage

from leads.abuse.ratelimit import SubmissionLimiter, submission_keys
from leads.abuse.windows import MemoryWindows

RATE = "5/minute;30/day"
GAP = 0.002


async def run_once(storage_class: type, visitors: int, block: int) -> list[float]:
    limiter = SubmissionLimiter(RATE)
    limiter._storage = storage_class()  # the one thing compared: where windows are kept
    per_block: list[float] = []
    started = time.process_time()
    for i in range(visitors):
        keys = submission_keys(
            client_ip=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
            email=f"visitor{i}@example.com",
            phone=f"+1202555{i % 10_000:04d}",
        )
        assert await limiter.hit(keys) is None
        await asyncio.sleep(GAP)
        if (i + 1) % block == 0:
            now = time.process_time()
            per_block.append((now - started) * 1000 / block)
            started = now
    await limiter.aclose()
    return per_block


STORAGES = {"limits": MemoryStorage, "leads": MemoryWindows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--block", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", choices=STORAGES, help=argparse.SUPPRESS)  # a child run
    args = parser.parse_args()
    if args.one:
        per_block = asyncio.run(run_once(STORAGES[args.one], args.visitors, args.block))
        print(json.dumps(per_block))
        return 0
    results: dict[str, list[list[float]]] = {"limits": [], "leads": []}
    for _ in range(args.repeat):  # interleaved, so that drift hits both alike
        for name in results:
            child = [sys.executable, __file__, "--one", name]
            child += ["--visitors", str(args.visitors), "--block", str(args.block)]
            out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            results[name].append(json.loads(out))
    print(f"CPU ms per submission (3 keys x 2 limits), median of {args.repeat}")
    print("| visitors so far | limits' MemoryStorage | MemoryWindows | ratio |")
    print("| --- | --- | --- | --- |")
    for n in range(args.visitors // args.block):
        base = statistics.median(r[n] for r in results["limits"])
        ours = statistics.median(r[n] for r in results["leads"])
        upto = (n + 1) * args.block
        print(f"| {upto - args.block + 1}-{upto} | {base:.3f} | {ours:.3f} | {ours / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
