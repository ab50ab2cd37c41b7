"""Medians across repeats, the intake targets, and the markdown summary of a run."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUMMED = ("errors", "non_2xx", "socket_errors", "missing")  # totals over repeats, not medians


@dataclass(frozen=True)
class Target:
    label: str
    key: str
    limit: float
    at_most: bool  # True: value <= limit passes; False: value >= limit passes
    unit: str
    also_zero: str | None = None  # a summed key that must be 0 as well
    kinds: tuple[str, ...] = ("", "-worker")  # which leads variants it is for ("" = default)
    engines: tuple[str, ...] = ("sqlite", "postgresql")

    def applies(self, variant: str) -> bool:
        engine, dash, kind = variant.partition("-")
        return engine in self.engines and (dash + kind) in self.kinds

    def check(self, values: dict[str, Any]) -> tuple[str, str]:
        value = values.get(self.key)
        if value is None:
            return "n/a", ""
        ok = value <= self.limit if self.at_most else value >= self.limit
        errors = values.get(self.also_zero, 0) if self.also_zero else 0
        ok = ok and not errors
        margin = (value / self.limit - 1) * 100 if self.limit else 0.0
        note = f"{margin:+.0f}% vs target" + (f", {errors} errors" if errors else "")
        return ("pass" if ok else "MISS"), note


WORKER, DEFAULT = ("-worker",), ("",)
TARGETS = [
    Target("intake alone at 64 connections, no errors", "ratio", 0.20, False, "x bare",
           "closed.errors", WORKER, ("sqlite",)),
    Target("intake alone at 64 connections, no errors", "ratio", 0.15, False, "x bare",
           "closed.errors", WORKER, ("postgresql",)),
    Target("intake alone: CPU per lead", "cpu_ratio", 4.0, True, "x bare", None, WORKER),
    Target("intake alone: req/s", "naive_ratio", 2.0, False, "x naive", None, WORKER),
    Target("default (email in process) at 64 connections, no errors", "ratio", 0.12, False,
           "x bare", "closed.errors", DEFAULT),
    Target("default: CPU per lead incl. its email", "email_cpu_ratio", 8.0, True, "x bare",
           None, DEFAULT),
    Target("submit-to-inbox during the 64-connection run, p99, every email delivered",
           "closed.inbox.p99_ms", 1000.0, True, "ms", "closed.mail.missing"),
    Target("p99 at 200 req/s (open loop)", "open.p99_ms", 10.0, True, "ms", "open.errors"),
    Target("RSS under load", "closed.rss_peak_mb", 80.0, True, "MB"),
    Target("cold start to first 200", "cold_start_ms", 1000.0, True, "ms"),
]  # fmt: skip

ROWS: list[tuple[str, str]] = [
    ("closed loop, 64 connections: req/s", "closed.rps"),
    ("  ratio to bare (same repeat)", "ratio"),
    ("  ratio to the naive app on the same engine (same repeat)", "naive_ratio"),
    ("  p50 / p99 ms", "closed.p50_ms|closed.p99_ms"),
    ("  errors: non-2xx / socket (total)", "closed.non_2xx|closed.socket_errors"),
    ("  server CPU per request, ms", "closed.cpu_ms_per_request"),
    ("  ratio to bare's CPU per request (same repeat)", "cpu_ratio"),
    ("  leads worker's CPU per lead, ms", "closed.worker_cpu_ms_per_lead"),
    ("  CPU per lead incl. its email (all processes), ms", "closed.cpu_ms_per_lead_with_email"),
    ("  ratio to bare's CPU per request (same repeat)", "email_cpu_ratio"),
    ("  notification emails delivered during the run", "closed.mail_delivered_during_run"),
    ("  submit-to-inbox (10 req/s probe beside wrk): p50 / p99 ms",
     "closed.inbox.p50_ms|closed.inbox.p99_ms"),
    ("  emails missing 20 s after the run (total)", "closed.mail.missing"),
    ("  last email in, s after the run began", "closed.mail.seconds_to_last"),
    ("open loop, 200 req/s: p50 / p99 / max ms", "open.p50_ms|open.p99_ms|open.max_ms"),
    ("  errors (total) / client lag p99 ms", "open.errors|open.client_lag_p99_ms"),
    ("submit-to-inbox, 20 req/s: p50 / p99 ms", "inbox.p50_ms|inbox.p99_ms"),
    ("  emails missing after 20 s (total)", "inbox.missing"),
    (
        "submit-to-inbox, 200 req/s: p50 / p99 ms",
        "inbox_at_open_rate.p50_ms|inbox_at_open_rate.p99_ms",
    ),
    ("  emails missing after 20 s (total)", "inbox_at_open_rate.missing"),
    ("RSS idle / peak under load, MB", "rss_idle_mb|closed.rss_peak_mb"),
    ("cold start to first 200, ms (median of 3)", "cold_start_ms"),
    ("  restart on the migrated database, ms (its server runs the phases above)",
     "restart_ms"),
]  # fmt: skip


def flatten(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in result.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[prefix + key] = value
    return flat


def medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per server: the median of every figure over the repeats (errors: the total). Ratios
    are taken within a repeat first (to bare, and to the naive app on the same engine)."""
    bares = [flatten(r) for r in runs["bare"]]
    out: dict[str, dict[str, float]] = {}
    for name, results in runs.items():
        flats = [flatten(r) for r in results]
        naive = runs.get(name.partition("-")[0] + "-naive")
        naives = [flatten(r) for r in naive] if naive and not name.endswith("-naive") else None
        for i, (flat, base) in enumerate(zip(flats, bares, strict=True)):
            flat["ratio"] = round(flat["closed.rps"] / base["closed.rps"], 3)
            base_cpu = base.get("closed.cpu_ms_per_request")
            if base_cpu:
                flat["cpu_ratio"] = round(flat["closed.cpu_ms_per_request"] / base_cpu, 2)
                if "closed.cpu_ms_per_lead_with_email" in flat:
                    with_email = flat["closed.cpu_ms_per_lead_with_email"]
                    flat["email_cpu_ratio"] = round(with_email / base_cpu, 2)
            if naives is not None:
                flat["naive_ratio"] = round(flat["closed.rps"] / naives[i]["closed.rps"], 2)
        keys = sorted({k for flat in flats for k in flat})
        combined: dict[str, float] = {}
        for key in keys:
            values = [flat[key] for flat in flats if key in flat]
            how: Callable[[list[float]], float] = (
                sum if key.rsplit(".", 1)[-1] in SUMMED else statistics.median
            )
            combined[key] = round(how(values), 4)
        out[name] = combined
    return out


def _cell(values: dict[str, float], keys: str) -> str:
    parts = [values.get(k) for k in keys.split("|")]
    if all(p is None for p in parts):
        return "-"
    return " / ".join("-" if p is None else f"{p:g}" for p in parts)


def markdown(results: dict[str, Any]) -> str:
    meds: dict[str, dict[str, float]] = results["medians"]
    names = list(meds)
    m = results["machine"]
    repeats = len(results["runs"]["bare"])
    lines = [
        f"Commit {m['commit']}"
        + (f" (+{len(m['uncommitted'])} uncommitted files in leads/)" if m["uncommitted"] else "")
        + f", {results['date']}, {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, "
        f"kernel {m['kernel']}, Python {m['python']}. Medians of {repeats} repeat(s); "
        "error counts are totals.",
        "",
    ]
    if "code_changed_during_run" in results:
        moved = results["code_changed_during_run"]["commit"]
        lines += [f"WARNING: the code changed during the run (now {moved}); rerun.", ""]
    lines += [
        "| Measure | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for label, keys in ROWS:
        lines.append(f"| {label} | " + " | ".join(_cell(meds[n], keys) for n in names) + " |")
    leads = [n for n in names if n != "bare" and not n.endswith("-naive")]
    lines += [
        "",
        "| Target | " + " | ".join(leads) + " |",
        "| --- |" + " --- |" * len(leads),
    ]
    for target in TARGETS:
        sign = "<=" if target.at_most else ">="
        cells = []
        for name in leads:
            if not target.applies(name):
                cells.append("")
                continue
            verdict, note = target.check(meds[name])
            value = meds[name].get(target.key)
            shown = "-" if value is None else f"{value:g} {target.unit}"
            cells.append(f"{verdict}: {shown} ({note})" if note else verdict)
        if not any(cells):
            continue
        label = f"{target.label} {sign} {target.limit:g} {target.unit}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def one_line(result: dict[str, Any]) -> str:
    """A progress line for stderr."""
    flat = flatten(result)
    keys = ("closed.rps", "closed.errors", "closed.cpu_ms_per_request", "open.p99_ms")
    keys += ("closed.inbox.p99_ms", "closed.mail.missing")
    shown = [f"{k}={flat[k]:g}" for k in keys if k in flat]
    shown += [f"rss={flat.get('rss_idle_mb', 0):g}/{flat.get('closed.rss_peak_mb', 0):g}MB"]
    shown += [f"cold={flat.get('cold_start_ms', 0):g}ms"]
    return " ".join(shown)
