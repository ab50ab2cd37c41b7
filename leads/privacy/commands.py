"""`leads purge`, `leads erase` and `leads export-subject`. Each runs one use case in one
transaction; the audit log names the command line as ``cli``. Counts are printed one line
per kind (``leads: 3``), after a line saying whether anything was really removed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from leads.core.vocabulary import RemovedKind
from leads.errors import InvalidSubmission, UsageError
from leads.privacy.matching import Subject, read_subject
from leads.settings import Settings

if TYPE_CHECKING:
    from leads.storage.database import Database

CLI_ACTOR = "cli"


def print_counts(counts: Mapping[RemovedKind, int], *, dry_run: bool) -> None:
    print("dry run: nothing was removed; this would remove:" if dry_run else "removed:")
    for kind, count in counts.items():
        print(f"{kind.label}: {count}")


def subject_of(args: argparse.Namespace, settings: Settings) -> Subject:
    try:
        return read_subject(email=args.email, phone=args.phone, region=settings.default_region)
    except InvalidSubmission as exc:
        raise UsageError("; ".join(f"--{e.field}: {e.message}" for e in exc.errors)) from None


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.storage.retention import Retention, purge_expired
    from leads.storage.types import utcnow

    async def purge(database: Database) -> Mapping[RemovedKind, int]:
        async with database.writing() as session:
            return await purge_expired(
                session=session,
                retention=Retention.from_settings(settings),
                now=utcnow(),
                actor=CLI_ACTOR,
                dry_run=args.dry_run,
            )

    counts = run_ready(settings, purge)
    print_counts({kind: counts[kind] for kind in RemovedKind}, dry_run=args.dry_run)
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.privacy.erasure import erase_subject
    from leads.storage.types import utcnow

    subject = subject_of(args, settings)

    async def erase(database: Database) -> Mapping[RemovedKind, int]:
        async with database.writing() as session:
            return await erase_subject(
                session=session,
                subject=subject,
                actor=CLI_ACTOR,
                now=utcnow(),
                dry_run=args.dry_run,
            )

    print_counts(run_ready(settings, erase), dry_run=args.dry_run)
    return 0


def cmd_export_subject(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.privacy.subject import subject_document
    from leads.storage.types import utcnow

    subject = subject_of(args, settings)

    async def export(database: Database) -> dict[str, object]:
        async with database.writing() as session:
            return await subject_document(
                session=session, subject=subject, actor=CLI_ACTOR, now=utcnow()
            )

    json.dump(run_ready(settings, export), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


def _person(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", metavar="ADDRESS", help="their email address (any case)")
    who.add_argument(
        "--phone", metavar="NUMBER", help="their phone number (+country, or LEADS_DEFAULT_REGION)"
    )


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    purge = sub.add_parser("purge", help="remove what is past its retention now; print counts")
    purge.add_argument("--dry-run", action="store_true", help="only count; remove nothing")
    purge.set_defaults(run=cmd_purge)

    erase = sub.add_parser("erase", help="erase everything held about a person; print counts")
    _person(erase)
    erase.add_argument("--dry-run", action="store_true", help="only count; remove nothing")
    erase.set_defaults(run=cmd_erase)

    export = sub.add_parser(
        "export-subject", help="print everything held about a person as one JSON document"
    )
    _person(export)
    export.set_defaults(run=cmd_export_subject)
