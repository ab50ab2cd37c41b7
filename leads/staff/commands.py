"""The staff side's commands: `leads user ...`, `leads token ...` and `leads audit export`.
Each runs one use case in one transaction; the audit log names the command line as ``cli``.
A password is read from standard input (one line) when that is not a terminal, so scripts
can pipe it in; at a terminal it is asked for twice, without echo."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from leads.core.vocabulary import AuditAction, Role, TokenScope
from leads.errors import UsageError
from leads.settings import Settings

if TYPE_CHECKING:
    from leads.storage.database import Database

CLI_ACTOR = "cli"


def _when(moment: object) -> str:
    from datetime import datetime

    return moment.isoformat(timespec="seconds") if isinstance(moment, datetime) else "never"


def read_password() -> str:
    """The new password: one line of standard input, or typed twice at a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("New password (12 characters or more): ")
    if getpass.getpass("The same password again: ") != first:
        raise UsageError("the two passwords were not the same; nothing was changed")
    return first


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.accounts import add_user, check_password_rules, clean_account_email
    from leads.storage.types import utcnow

    email = clean_account_email(args.email)  # before asking for a password
    password = read_password()
    check_password_rules(password)

    async def add(database: Database) -> None:
        async with database.writing() as session:
            await add_user(
                session=session,
                email=email,
                password=password,
                role=Role(args.role),
                actor=CLI_ACTOR,
                now=utcnow(),
            )

    run_ready(settings, add)
    print(f"account {email} ({args.role}) added")
    return 0


def cmd_user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.accounts import change_password, check_password_rules, clean_account_email
    from leads.storage.types import utcnow

    email = clean_account_email(args.email)
    password = read_password()
    check_password_rules(password)

    async def change(database: Database) -> None:
        async with database.writing() as session:
            await change_password(
                session=session, email=email, password=password, actor=CLI_ACTOR, now=utcnow()
            )

    run_ready(settings, change)
    print(f"password of {email} changed; its sessions are over")
    return 0


def cmd_user_disable(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.accounts import clean_account_email, disable_user
    from leads.storage.types import utcnow

    email = clean_account_email(args.email)

    async def disable(database: Database) -> None:
        async with database.writing() as session:
            await disable_user(session=session, email=email, actor=CLI_ACTOR, now=utcnow())

    run_ready(settings, disable)
    print(f"account {email} disabled; its sessions are over")
    return 0


def cmd_user_list(args: argparse.Namespace, settings: Settings) -> int:
    from leads.cli import run_ready
    from leads.staff.accounts import list_users
    from leads.storage.staff_tables import User

    async def listing(database: Database) -> list[User]:
        async with database.reading() as session:
            return await list_users(session=session)

    print("email\trole\tactive\tcreated")
    for user in run_ready(settings, listing):
        active = "yes" if user.active else "no"
        print(f"{user.email}\t{user.role}\t{active}\t{_when(user.created_at)}")
    return 0


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
    user = sub.add_parser("user", help="staff accounts that sign in to /staff")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser(
        "add", help="make an account; the password comes from standard input or a prompt"
    )
    add.add_argument("email")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.STAFF.value)
    add.set_defaults(run=cmd_user_add)
    passwd = user_sub.add_parser("passwd", help="set a new password; ends the user's sessions")
    passwd.add_argument("email")
    passwd.set_defaults(run=cmd_user_passwd)
    disable = user_sub.add_parser("disable", help="stop an account signing in; ends its sessions")
    disable.add_argument("email")
    disable.set_defaults(run=cmd_user_disable)
    users = user_sub.add_parser("list", help="email, role, active, created")
    users.set_defaults(run=cmd_user_list)

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
