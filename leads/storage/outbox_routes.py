"""The outbox by route: which routes have pending messages, and a claim's seek into each.

``ix_outbox_route`` is ``(status, channel, target, next_attempt_at, created_at, id)``: each
route's pending messages side by side, in the claim's order. With the index it replaced,
``ix_outbox_due`` (every route mixed in that order), a claim whose route was full could find
the other routes' messages only by reading past the full route's whole backlog (50,000
emails waiting for the inbox: 50,000 rows read per claim, to find a webhook or nothing).
Now:

- :data:`ROUTES` walks the index from route to route (a loose index scan, written as a
  recursive CTE because neither SQLite nor PostgreSQL skips through an index by itself): one
  seek per channel and per target, so it costs the number of routes waiting, never the
  number of messages. A NULL target (the settings' inbox) is looked up per channel, since
  the engines sort NULLs at opposite ends.
- :func:`seek` takes the first few due messages of each route with room (``room_<i>``),
  one seek per route, merged in the claim's order: a claim reads what it takes and the
  few in-flight rows at the head of each route, however long the backlogs.
- :func:`earliest` is the earliest waiting message of the routes not skipped, one seek per
  route too.

A target is never the empty string (it is an address, a number or a URL), so the walk uses
``''`` for "before every target of this channel".
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import (
    CTE,
    CompoundSelect,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from leads.core.vocabulary import OutboxStatus
from leads.storage.models import OutboxMessage

OUTBOX = cast("Table", OutboxMessage.__table__)  # type: ignore[attr-defined]
Route = tuple[str, str | None]  # (channel, target): where a message goes
SEEKS_PER_STATEMENT = 16  # routes one seek statement serves; more take another statement


def free(now: Any) -> ColumnElement[bool]:
    """Not claimed, or its lease has run out."""
    return or_(OUTBOX.c.claimed_until.is_(None), OUTBOX.c.claimed_until < now)


@functools.cache
def _walk() -> CTE:
    """Every channel with pending messages, each followed by its targets in order: rows
    (channel, '') then (channel, target)..., until a channel of NULL ends the walk."""
    p = OUTBOX.alias("p")
    pending = p.c.status == OutboxStatus.PENDING
    empty = literal("", String())

    def first_channel(after: ColumnElement[Any] | None) -> Any:
        query = select(p.c.channel).where(pending).order_by(p.c.channel).limit(1)
        return (query if after is None else query.where(p.c.channel > after)).scalar_subquery()

    anchor = select(
        func.cast(first_channel(None), String()).label("channel"), empty.label("target")
    )
    walk = anchor.cte("walk", recursive=True)
    w = walk.alias("w")
    next_target = (
        select(p.c.target)
        .where(pending, p.c.channel == w.c.channel, p.c.target > w.c.target)
        .order_by(p.c.target)
        .limit(1)
        .scalar_subquery()
    )
    step = select(
        func.cast(
            case((next_target.is_(None), first_channel(w.c.channel)), else_=w.c.channel),
            String(),
        ),
        func.cast(func.coalesce(next_target, empty), String()),
    ).where(w.c.channel.is_not(None))
    return walk.union_all(step)


def _routes() -> CompoundSelect[Any]:
    walk = _walk()
    p = OUTBOX.alias("n")
    # A seek, not EXISTS: PostgreSQL would turn EXISTS into a join over every such row.
    inbox = (
        select(p.c.id)
        .where(p.c.status == OutboxStatus.PENDING, p.c.channel == walk.c.channel)
        .where(p.c.target.is_(None))
        .order_by(p.c.channel, p.c.target)  # as ix_outbox_route reads (see _due_in)
        .limit(1)
        .scalar_subquery()
        .is_not(None)
    )
    named = select(walk.c.channel, walk.c.target).where(
        walk.c.channel.is_not(None), walk.c.target != ""
    )
    unnamed = select(walk.c.channel, func.cast(null(), String())).where(
        walk.c.channel.is_not(None), walk.c.target == "", inbox
    )
    return union_all(named, unnamed)


ROUTES = _routes()  # the routes with pending messages (due or not), in no particular order


# A seek into one route is ordered by its channel and target too (the same order, as both
# are fixed): only ix_outbox_route serves that, so no engine reads the table some other way
# and filters. PostgreSQL, knowing most pending rows are the inbox's, otherwise expected a
# row of "this channel's inbox" early in another order (it read ix_outbox_due, when there
# was one) and read all of them to find none.
_IN_ROUTE_ORDER = (OUTBOX.c.channel, OUTBOX.c.target)


def _due_in(i: int, target: str | None) -> list[ColumnElement[bool]]:
    """The pending messages of route ``i`` (``channel_<i>``; ``target_<i>`` unless NULL: an
    index serves ``IS NULL`` and ``=``, PostgreSQL's none serves ``IS NOT DISTINCT FROM``)."""
    return [
        OUTBOX.c.status == OutboxStatus.PENDING,
        OUTBOX.c.channel == bindparam(f"channel_{i}"),
        OUTBOX.c.target.is_(None)
        if target is None
        else OUTBOX.c.target == bindparam(f"target_{i}"),
    ]


def kinds(routes: list[Route]) -> tuple[bool, ...]:
    """Which of ``routes`` have a target: what a statement for them is built for."""
    return tuple(target is not None for _, target in routes)


def params(routes: list[Route]) -> dict[str, Any]:
    """``routes`` as a statement's ``channel_<i>`` and ``target_<i>``."""
    found: dict[str, Any] = {}
    for i, (channel, target) in enumerate(routes):
        found[f"channel_{i}"], found[f"target_{i}"] = channel, target
    return found


@functools.cache  # one per list of route kinds (with a target or not)
def seek(targeted: tuple[bool, ...]) -> Select[Any]:
    """The first ``room_<i>`` due, free messages of each route, none of ``excluding``, the
    first ``limit`` of them all in the claim's order (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL, as each route's rows are read)."""
    branches = [
        select(
            OUTBOX.c.id,
            OUTBOX.c.channel,
            OUTBOX.c.target,
            OUTBOX.c.next_attempt_at,
            OUTBOX.c.created_at,
        )
        .where(*_due_in(i, "" if has_target else None))
        .where(OUTBOX.c.next_attempt_at <= bindparam("now"), free(bindparam("now")))
        .where(OUTBOX.c.id.not_in(bindparam("excluding", expanding=True)))
        .order_by(*_IN_ROUTE_ORDER, OUTBOX.c.next_attempt_at, OUTBOX.c.created_at, OUTBOX.c.id)
        .limit(bindparam(f"room_{i}"))
        .with_for_update(skip_locked=True)
        for i, has_target in enumerate(targeted)
    ]
    if len(branches) == 1:
        return branches[0]
    due = union_all(*(select(b.subquery()) for b in branches)).subquery("due")
    return (
        select(due.c.id, due.c.channel, due.c.target, due.c.next_attempt_at, due.c.created_at)
        .order_by(due.c.next_attempt_at, due.c.created_at, due.c.id)
        .limit(bindparam("limit"))
    )


@functools.cache  # one per number of routes skipped
def earliest(skipped: int) -> Select[Any]:
    """When the earliest unclaimed pending message comes due, of every route but the
    ``skipped`` ones (``channel_<i>``, ``target_<i>``; None: nothing waits): the walk, and
    one seek per route it finds."""
    walk = _walk().alias("r")
    p = OUTBOX.alias("f")

    def first(target: ColumnElement[bool]) -> Any:
        return (
            select(p.c.next_attempt_at)
            .where(p.c.status == OutboxStatus.PENDING, p.c.channel == walk.c.channel, target)
            .where(p.c.claimed_until.is_(None))
            .order_by(p.c.channel, p.c.target, p.c.next_attempt_at)  # see _due_in
            .limit(1)
            .scalar_subquery()
        )

    # In the walk a route without a target is its channel's row with '' (see _walk). The
    # '' is a literal of no column's name: compared with a column, a plain "" would get an
    # anonymous parameter named after it (target_1...), clashing with the routes' own.
    empty = literal("", String())
    kept = [
        not_(
            and_(
                walk.c.channel == bindparam(f"channel_{i}"),
                walk.c.target == func.coalesce(bindparam(f"target_{i}", type_=String()), empty),
            )
        )
        for i in range(skipped)
    ]
    firsts = union_all(
        select(first(p.c.target == walk.c.target).label("at")).where(
            walk.c.channel.is_not(None), walk.c.target != empty, *kept
        ),
        select(first(p.c.target.is_(None)).label("at")).where(
            walk.c.channel.is_not(None), walk.c.target == empty, *kept
        ),
    ).subquery("firsts")
    return select(func.min(firsts.c.at))
