"""The ``leads`` command. Errors in use are one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar, cast

from pydantic import ValidationError

from leads.errors import LeadsError, UsageError
from leads.logs import configure_logging, uvicorn_log_config
from leads.settings import Settings, error_lines

if TYPE_CHECKING:
    from leads.storage.database import Database

Command = Callable[[argparse.Namespace, Settings], int]
T = TypeVar("T")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # Before anything imports prometheus-client, which picks its storage on import: every
    # process of this server (the workers, and this one) counts into files here, and a
    # scrape adds them up (leads/metrics.py).
    metrics_dir = tempfile.mkdtemp(prefix="leads-metrics-")
    os.environ[MULTIPROC_DIR] = metrics_dir
    # uvicorn stops on SIGTERM or SIGINT and then raises the signal again, to die of it: let
    # that reach us as an exception, remove the directory, and die of the signal after all.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped_by)
    try:
        return _serve(args, settings)
    except StoppedBySignal as stopped:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        signal.signal(stopped.signum, signal.SIG_DFL)
        signal.raise_signal(stopped.signum)
        raise
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


class StoppedBySignal(BaseException):
    """How `leads serve` learns it was told to stop; not an error."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stopped_by(signum: int, _frame: object) -> None:
    raise StoppedBySignal(signum)


MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # leads.metrics.MULTIPROC_DIR, not imported yet


def metrics_dir() -> str:
    return os.environ[MULTIPROC_DIR]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from leads.core.forms import load_forms
    from leads.intake.consent import check_wordings
    from leads.keys import with_secret_key
    from leads.notify.channels import builtin_channels
    from leads.storage.migrations import upgrade_to_head
    from leads.web.connections import protocol_factory
    from leads.web.scrape import MetricsListener

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers > 1 and settings.is_sqlite:
        raise UsageError(
            f"--workers {args.workers} needs PostgreSQL: with SQLite one process writes at a time "
            "and each worker would queue its writes behind the others' (use one worker, or "
            "LEADS_DATABASE_URL=postgresql://...)"
        )
    settings = with_secret_key(settings)  # before the workers start: one key for all
    # A broken forms file fails here, in one line.
    forms = load_forms(settings.forms_file, region=settings.default_region)
    channels = builtin_channels()
    # So does a channel's setting that cannot work, or a form's recipients nothing sends to.
    channels.check(settings, forms.forms.values())

    async def prepare(database: Database) -> None:
        await upgrade_to_head(database)
        # So does a consent_version reused for new wording (each worker checks again).
        await check_wordings(database, forms)

    asyncio.run(with_database(settings, prepare))
    base = f"http://{args.host}:{args.port}"
    logger = logging.getLogger("leads")
    if not channels.configured(settings):
        logger.warning(
            "no inbox is set: new leads are announced in this log only. Set LEADS_INBOX and "
            "LEADS_SMTP_URL (or LEADS_EMAIL_API, LEADS_WEBHOOK_URLS); see docs/notifications.md"
        )
    if settings.dispatcher == "worker":
        logger.info("LEADS_DISPATCHER=worker: run `leads worker` to deliver notifications")
    open_files = raise_open_file_limit()
    if open_files < settings.max_connections + OPEN_FILES_HEADROOM:
        logger.warning(
            "the open-file limit (%d) is below LEADS_MAX_CONNECTIONS (%d) plus %d for the "
            "database and logs: raise LimitNOFILE (docs/operations.md) or lower the setting",
            open_files,
            settings.max_connections,
            OPEN_FILES_HEADROOM,
        )
    logger.info(
        "PROMETHEUS_MULTIPROC_DIR=%s (the workers' metrics; removed on exit)", metrics_dir()
    )
    listener = None
    if settings.metrics_bind is not None:
        listener = MetricsListener(settings)
        listener.open()  # an address in use stops us here, in one line
        logger.info("metrics at http://%s/metrics", settings.metrics_bind)
    logger.info("serving; the form is at %s/f/dry-needling", base)
    try:
        uvicorn.run(
            "leads.app:app_from_environment",
            factory=True,
            # uvicorn's httptools protocol with deadlines and limits (leads/web/connections.py);
            # uvicorn takes a protocol class, and instantiates this partial the same way.
            http=cast("type[asyncio.Protocol]", protocol_factory(settings)),
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level,
            # Our handler and format in every process; each request is logged once, by
            # leads/web/requestlog.py (with its route, not its path), so no access log.
            log_config=uvicorn_log_config(),
            access_log=False,
            proxy_headers=False,  # X-Forwarded-For is not trusted: the peer address is stored
            server_header=False,
        )
    finally:
        if listener is not None:
            listener.close()
    return 0


OPEN_FILES_HEADROOM = 64  # descriptors besides connections: database, logs, sockets
OPEN_FILES_CEILING = 65536  # what a huge or unlimited hard limit is taken to mean


def raise_open_file_limit() -> int:
    """Raise this process's open-file soft limit to the hard limit (workers inherit it), at
    most OPEN_FILES_CEILING; returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = OPEN_FILES_CEILING if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return OPEN_FILES_CEILING if soft == resource.RLIM_INFINITY else soft


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from leads.storage.migrations import upgrade_to_head

    asyncio.run(with_database(settings, upgrade_to_head))
    print("database schema is up to date")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from leads.core.vocabulary import AuditAction
    from leads.staff.audit import record_audit
    from leads.staff.commands import CLI_ACTOR
    from leads.staff.export import export_leads
    from leads.storage.types import utcnow

    async def export(database: Database) -> None:
        async with database.reading() as session:
            await export_leads(session=session, fmt=args.format, out=sys.stdout)
        async with database.writing() as session:  # exports are audited, as downloads are
            await record_audit(
                session=session,
                actor=CLI_ACTOR.label,
                action=AuditAction.LEADS_EXPORTED,
                now=utcnow(),
                detail={"format": args.format, "via": "leads export"},
            )

    asyncio.run(with_ready_database(settings, export))
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from leads.notify.operator import run_worker, worker_runner

    asyncio.run(with_ready_database(settings, _nothing))  # before announcing it delivers
    with worker_runner() as runner:
        runner.run(run_worker(settings))
    return 0


def cmd_outbox_list(args: argparse.Namespace, settings: Settings) -> int:
    from leads.core.vocabulary import OutboxStatus
    from leads.notify.operator import list_outbox

    wanted = ((OutboxStatus.DEAD, args.dead), (OutboxStatus.PENDING, args.pending))
    statuses: list[str] = [status for status, asked in wanted if asked]

    async def listing(database: Database) -> None:
        async with database.reading() as session:
            await list_outbox(session=session, statuses=statuses, out=sys.stdout)

    asyncio.run(with_ready_database(settings, listing))
    return 0


def cmd_outbox_retry(args: argparse.Namespace, settings: Settings) -> int:
    from leads.notify.operator import retry_outbox
    from leads.storage.types import utcnow

    if not args.ids and not args.all_dead:
        raise UsageError("name message ids to retry, or use --all-dead")
    try:
        ids = [uuid.UUID(i) for i in args.ids]
    except ValueError as exc:
        raise UsageError(f"not a message id: {exc}") from exc

    async def retry(database: Database) -> int:
        async with database.writing() as session:
            return await retry_outbox(
                session=session, ids=ids, all_dead=args.all_dead, now=utcnow()
            )

    count = asyncio.run(with_ready_database(settings, retry))
    print(f"{count} message(s) queued for delivery")
    return 0


def cmd_notify_test(args: argparse.Namespace, settings: Settings) -> int:
    from leads.notify.operator import notify_test

    return 0 if asyncio.run(notify_test(settings, sys.stdout)) else 1


def cmd_spam_release(args: argparse.Namespace, settings: Settings) -> int:
    from leads.core.forms import load_forms
    from leads.staff.commands import CLI_ACTOR
    from leads.staff.spam import release_lead
    from leads.storage.types import utcnow

    try:
        lead_id = uuid.UUID(args.id)
    except ValueError:
        raise UsageError(f"{args.id!r} is not a lead id") from None
    forms = load_forms(settings.forms_file, region=settings.default_region)

    async def release(database: Database) -> int:
        async with database.writing() as session:
            _lead, queued = await release_lead(
                session=session,
                settings=settings,
                forms=forms,
                actor=CLI_ACTOR,
                lead_id=lead_id,
                now=utcnow(),
                by_receipt=True,
            )
            return queued

    released = asyncio.run(with_ready_database(settings, release))
    print(f"lead {args.id} marked not spam; {released} notification(s) on their way")
    return 0


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from leads.core.vocabulary import AuditAction
    from leads.keys import key_file_for
    from leads.staff.audit import record_audit
    from leads.staff.commands import CLI_ACTOR
    from leads.storage.backup import back_up_sqlite, check_target
    from leads.storage.database import sqlite_path
    from leads.storage.types import utcnow

    source = sqlite_path(settings.database_url)
    if not settings.is_sqlite:
        raise UsageError(
            "leads backup copies SQLite databases; on PostgreSQL use pg_dump "
            "(docs/operations.md, Backups and restore)"
        )
    if source is None:
        raise UsageError("an in-memory database cannot be backed up")
    target = Path(args.path).absolute()
    check_target(target, force=args.force)  # before opening anything
    # The generated key file signs form tokens; a key set in the environment is not ours.
    key_file = key_file_for(settings) if settings.secret_key is None else None

    async def backup(database: Database) -> tuple[int, Path | None]:
        result = await asyncio.to_thread(
            back_up_sqlite,
            source,
            target,
            key_file=key_file,
            force=args.force,
            timeout=settings.database_timeout_seconds,
        )
        async with database.writing() as session:
            await record_audit(
                session=session,
                actor=CLI_ACTOR.label,
                action=AuditAction.BACKUP,
                now=utcnow(),
                detail={"path": str(target), "bytes": result.size},
            )
        return result.size, result.key_copy

    size, key_copy = asyncio.run(with_ready_database(settings, backup))
    print(f"backed up {source} to {target} ({size} bytes)")
    if key_copy is not None:
        print(f"copied the secret key to {key_copy}: keep it with the backup")
    elif settings.secret_key is not None:
        print("LEADS_SECRET_KEY is not in the backup: keep it in your secret store")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from leads.core.forms import load_forms
    from leads.keys import key_file_for, with_secret_key
    from leads.notify.channels import builtin_channels
    from leads.notify.routes import route_lines
    from leads.storage.migrations import pending_revisions

    view = settings.public_view()
    key_file = key_file_for(settings)
    if settings.secret_key is None and key_file is not None and key_file.exists():
        view["LEADS_SECRET_KEY"] = f"(not set; using the generated key in {key_file})"
    for name, value in view.items():
        print(f"{name}={value}")
    # What `serve` would refuse at start, said here too (raises: one line, exit 2).
    if settings.secret_key is None and not settings.is_sqlite:
        with_secret_key(settings)
    forms = load_forms(settings.forms_file, region=settings.default_region)
    builtin_channels().check(settings, forms.forms.values())
    print(f"forms: {', '.join(sorted(forms.forms))}")
    for line in route_lines(settings, forms):
        print(line)

    async def probe(database: Database) -> int:
        if not await database.ping():
            print("database: unreachable")
            return 1
        pending = await pending_revisions(database)
        state = (
            f"{len(pending)} migration(s) pending: run `leads migrate`" if pending else "current"
        )
        print(f"database: reachable; schema {state}")
        return 0

    return asyncio.run(with_database(settings, probe))


def run_ready(settings: Settings, use: Callable[[Database], Awaitable[T]]) -> T:
    """Run one use case on a database that exists and is migrated (see below)."""
    return asyncio.run(with_ready_database(settings, use))


async def _nothing(database: Database) -> None:
    return None


async def with_ready_database(settings: Settings, use: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``use`` on a database that exists and is migrated; otherwise stop with one line
    naming the database and the fix. Creates nothing: a missing SQLite file stays missing."""
    from leads.settings import redact_url
    from leads.storage.database import sqlite_path
    from leads.storage.migrations import require_current, require_existing

    path = sqlite_path(settings.database_url)
    shown = str(path) if path else redact_url(settings.database_url).replace("+asyncpg", "")
    require_existing(settings.database_url, shown)

    async def checked(database: Database) -> T:
        await require_current(database, shown)
        return await use(database)

    return await with_database(settings, checked)


async def with_database(settings: Settings, use: Callable[[Database], Awaitable[T]]) -> T:
    from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

    from leads.errors import StorageUnavailable
    from leads.storage.database import Database

    database = Database.from_settings(settings)
    try:
        return await use(database)
    except (OperationalError, InterfaceError, OSError) as exc:
        raise StorageUnavailable(f"the database cannot be reached ({type(exc).__name__})") from exc
    except SQLAlchemyError as exc:
        raise StorageUnavailable(
            f"the database refused the operation ({type(exc).__name__})"
        ) from exc
    finally:
        await database.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leads", description="Capture clinic website enquiries and tell the clinic at once."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="apply migrations, then serve the forms and the API")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.set_defaults(run=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(run=cmd_migrate)

    export = sub.add_parser("export", help="write every stored lead to standard output")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.set_defaults(run=cmd_export)

    backup = sub.add_parser("backup", help="copy the SQLite database (and its key) while it runs")
    backup.add_argument("path", metavar="PATH", help="the file to write; it must not exist")
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")
    backup.set_defaults(run=cmd_backup)

    check = sub.add_parser("check", help="show the configuration and test the database")
    check.set_defaults(run=cmd_check)

    worker = sub.add_parser("worker", help="deliver notifications (with LEADS_DISPATCHER=worker)")
    worker.set_defaults(run=cmd_worker)

    box = sub.add_parser("outbox", help="see and retry notification deliveries")
    box_sub = box.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    listing = box_sub.add_parser("list", help="list notifications (all, or only some states)")
    listing.add_argument("--dead", action="store_true", help="dead letters")
    listing.add_argument("--pending", action="store_true", help="waiting to be delivered")
    listing.set_defaults(run=cmd_outbox_list)
    retry = box_sub.add_parser("retry", help="send dead letters (or pending ones) again now")
    retry.add_argument("ids", nargs="*", metavar="ID", help="message ids from `outbox list`")
    retry.add_argument("--all-dead", action="store_true", help="every dead letter")
    retry.set_defaults(run=cmd_outbox_retry)

    spam = sub.add_parser("spam", help="act on leads flagged as spam")
    spam_sub = spam.add_subparsers(dest="spam_command", required=True, metavar="ACTION")
    release = spam_sub.add_parser("release", help="mark a lead not spam and notify the clinic")
    release.add_argument("id", help="the lead's id (see `leads export`)")
    release.set_defaults(run=cmd_spam_release)

    notify = sub.add_parser("notify-test", help="send a test through every channel now")
    notify.set_defaults(run=cmd_notify_test)

    from leads.staff.commands import add_commands

    add_commands(sub)
    from leads.privacy.commands import add_commands as add_privacy_commands

    add_privacy_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        configure_logging(settings.log_level, settings.log_format)
        run: Command = args.run
        return run(args, settings)
    except ValidationError as exc:
        for line in error_lines(exc):
            print(f"leads: error: {line}", file=sys.stderr)
        return 2
    except LeadsError as exc:
        print(f"leads: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `leads export | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
