"""The staff side's commands: `leads token ...` and `leads audit export` (`leads user ...`
is added beside them). Each runs one use case in one transaction; the audit log names the
command line as ``cli``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from leads.core.vocabulary import AuditAction, TokenScope
from leads.settings import Settings

if TYPE_CHECKING:
    from leads.storage.database import Database

CLI_ACTOR = "cli"


def _when(moment: object) -> str:
    from datetime import datetime

    return moment.isoformat(timespec="seconds") if isinstance(moment, datetime) else "never"


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.tokens import create_token
    from leads.storage.types import utcnow

    async def create(database: Database) -> str:
        async with database.writing() as session:
            return await create_token(
                session=session,
                name=args.name,
                scope=TokenScope(args.scope),
                actor=CLI_ACTOR,
                now=utcnow(),
            )

    token = run_ready(settings, create)
    print(f"token {args.name!r} ({args.scope}) created; it is shown only now:")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.tokens import list_tokens
    from leads.storage.staff_tables import ApiToken

    async def listing(database: Database) -> list[ApiToken]:
        async with database.reading() as session:
            return await list_tokens(session=session)

    records = run_ready(settings, listing)
    print("name\tscope\tcreated\tlast used")
    for record in records:
        created, used = _when(record.created_at), _when(record.last_used_at)
        print(f"{record.name}\t{record.scope}\t{created}\t{used}")
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.tokens import revoke_token
    from leads.storage.types import utcnow

    async def revoke(database: Database) -> None:
        async with database.writing() as session:
            await revoke_token(session=session, name=args.name, actor=CLI_ACTOR, now=utcnow())

    run_ready(settings, revoke)
    print(f"token {args.name!r} revoked")
    return 0


def cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.audit import export_audit, record_audit
    from leads.storage.types import utcnow

    async def export(database: Database) -> None:
        async with database.writing() as session:
            count = await export_audit(session=session, out=sys.stdout)
            await record_audit(
                session=session,
                actor=CLI_ACTOR,
                action=AuditAction.AUDIT_EXPORTED,
                now=utcnow(),
                detail={"entries": count},
            )

    run_ready(settings, export)
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="API tokens for the staff API")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_sub.add_parser(
        "create", help="make a token; it is printed once, on the last line"
    )
    create.add_argument("--name", required=True, help="what the token is for, e.g. crm-sync")
    create.add_argument(
        "--scope", choices=[s.value for s in TokenScope], default=TokenScope.READ.value
    )
    create.set_defaults(run=cmd_token_create)
    listing = token_sub.add_parser("list", help="name, scope, created, last used")
    listing.set_defaults(run=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="stop a token working at once")
    revoke.add_argument("name")
    revoke.set_defaults(run=cmd_token_revoke)

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    export = audit_sub.add_parser("export", help="every entry, oldest first")
    export.add_argument("--format", choices=("jsonl",), default="jsonl")
    export.set_defaults(run=cmd_audit_export)
